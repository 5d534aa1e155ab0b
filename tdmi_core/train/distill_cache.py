"""Pre-cropped person windows for fast distillation on a CPU: decode every frame once, crop once.

Decoding 1920x1088 JPEGs and warping 2*delta+1 crops per window costs more than a small
backbone's forward pass, so :func:`build_crop_cache` does it once for every training window and
:func:`save_crop_cache` / :func:`load_crop_cache` keep the result as ``.npy`` files.

A window is one labelled person in one key frame. All its frames are cropped with ONE affine
(the key frame's box enlarged by ``padding`` and fitted to the model aspect ratio), as the
dataset and the runtime do; frames outside the video are padded by
:func:`tdmi_core.model_input.window_frame_indices`. Targets are the key frame's teacher
keypoints, encoded by :class:`tdmi_core.codec.HeatmapCodec`.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tdmi_core.codec import HeatmapCodec
from tdmi_core.data.dataset import FrameReader, gt_sample_refs
from tdmi_core.data.posetrack import VideoRecord
from tdmi_core.geometry import crop_affine_for_box, transform_points, warp_crop
from tdmi_core.model_input import window_frame_indices

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
_ARRAYS = ("crops", "keypoints", "visible", "heatmaps", "weights", "affine", "video_index", "frame_index", "track_id")


@dataclass(frozen=True)
class CropCache:
    """Cropped training windows (N windows, T = 2*delta+1 frames, K joints).

    Attributes:
        crops: ``[N, T, H, W, 3]`` uint8 BGR crops, time order, key frame at index ``delta``.
        keypoints: ``[N, K, 2]`` float32 key-frame teacher joints in crop pixels.
        visible: ``[N, K]`` float32, 1 where the teacher labelled the joint and it lies inside the crop.
        heatmaps: ``[N, K, h, w]`` float16 Gaussian targets (codec of ``meta``).
        weights: ``[N, K]`` float32 target weights (= visible unless the Gaussian misses the map).
        affine: ``[N, 2, 3]`` float32 source-image -> crop matrix of each window.
        video_index, frame_index, track_id: ``[N]`` int64 origin of each window.
        meta: settings the cache was built with (input/heatmap size, sigma, delta, padding, videos).
    """

    crops: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    heatmaps: np.ndarray
    weights: np.ndarray
    affine: np.ndarray
    video_index: np.ndarray
    frame_index: np.ndarray
    track_id: np.ndarray
    meta: dict[str, Any]

    def __len__(self) -> int:
        return int(self.crops.shape[0])


def cache_meta(
    videos: Sequence[VideoRecord],
    input_size_hw: tuple[int, int],
    heatmap_size_hw: tuple[int, int],
    sigma: float,
    delta: int,
    padding: float,
    key_frame_stride: int,
) -> dict[str, Any]:
    """The settings that decide a cache's content (a cache is reused only when they all match)."""
    return {
        "version": CACHE_VERSION,
        "input_size_hw": [int(v) for v in input_size_hw],
        "heatmap_size_hw": [int(v) for v in heatmap_size_hw],
        "sigma": float(sigma),
        "delta": int(delta),
        "padding": float(padding),
        "key_frame_stride": int(key_frame_stride),
        "videos": [[v.video_id, v.num_frames, sum(len(f.persons) for f in v.frames)] for v in videos],
    }


def build_crop_cache(
    videos: Sequence[VideoRecord],
    image_root: str | Path,
    input_size_hw: tuple[int, int],
    heatmap_size_hw: tuple[int, int],
    sigma: float = 2.0,
    delta: int = 2,
    padding: float = 1.25,
    key_frame_stride: int = 1,
    progress: bool = True,
) -> CropCache:
    """Crop every training window once.

    Args:
        videos: teacher-labelled (or PoseTrack) videos from :func:`tdmi_core.data.posetrack.read_split`.
        image_root: directory the frame file names are relative to.
        input_size_hw: crop size (H, W); heatmap_size_hw: (H/4, W/4); sigma: Gaussian sigma in heatmap pixels.
        delta: frames on each side of the key frame; padding: box enlargement (1.25).
        key_frame_stride: keep every n-th labelled frame of each video as a key frame.
        progress: show a tqdm bar.

    Returns:
        A :class:`CropCache`. Raises ValueError when the videos hold no labelled person.
    """
    from tqdm import tqdm

    in_h, in_w = (int(v) for v in input_size_hw)
    codec = HeatmapCodec((in_h, in_w), heatmap_size_hw, sigma)
    refs = gt_sample_refs(videos, min_labelled_joints=1, key_frame_stride=key_frame_stride)
    if not refs:
        raise ValueError("no labelled person in the given videos; check the annotation directory")
    first = refs[0]
    k = videos[first.video_index].frames[first.frame_index].persons[first.person_index].keypoints.shape[0]
    n, t = len(refs), 2 * delta + 1
    hm_h, hm_w = codec.heatmap_size_hw
    crops = np.empty((n, t, in_h, in_w, 3), np.uint8)
    keypoints = np.zeros((n, k, 2), np.float32)
    visible = np.zeros((n, k), np.float32)
    heatmaps = np.zeros((n, k, hm_h, hm_w), np.float16)
    weights = np.zeros((n, k), np.float32)
    affine = np.zeros((n, 2, 3), np.float32)
    # refs are in (video, frame) order, so a small LRU of decoded frames serves every window once.
    reader = FrameReader(image_root, cache_size=2 * t + 2)
    for i, ref in enumerate(tqdm(refs, desc="pre-crop", unit="win", disable=not progress, mininterval=5)):
        video = videos[ref.video_index]
        _, _, matrix = crop_affine_for_box(np.asarray(ref.box_xyxy), (in_h, in_w), padding)
        for j, f in enumerate(window_frame_indices(ref.frame_index, video.num_frames, delta)):
            crops[i, j] = warp_crop(reader(video.frames[f].file_name), matrix, (in_w, in_h))
        person = video.frames[ref.frame_index].persons[ref.person_index]
        xy = transform_points(person.keypoints[:, :2].astype(np.float64), matrix)
        # DCPose rule (as PoseTrackWindowDataset): joints that leave the crop get no target.
        inside = (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] <= in_w) & (xy[:, 1] <= in_h)
        vis = ((person.keypoints[:, 2] > 0) & inside).astype(np.float32)
        hm, w = codec.encode(xy, vis)
        keypoints[i], visible[i], heatmaps[i], weights[i], affine[i] = xy, vis, hm, w, matrix
    meta = cache_meta(videos, (in_h, in_w), heatmap_size_hw, sigma, delta, padding, key_frame_stride)
    return CropCache(
        crops, keypoints, visible, heatmaps, weights, affine,
        np.array([r.video_index for r in refs], np.int64),
        np.array([r.frame_index for r in refs], np.int64),
        np.array([r.track_id for r in refs], np.int64),
        meta,
    )


def save_crop_cache(cache: CropCache, directory: str | Path) -> None:
    """Write one ``.npy`` per array plus ``meta.json`` (written last: its presence marks a complete cache)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meta.json").unlink(missing_ok=True)
    for name in _ARRAYS:
        np.save(directory / f"{name}.npy", getattr(cache, name))
    (directory / "meta.json").write_text(json.dumps(cache.meta, indent=1), encoding="utf-8")


def load_crop_cache(directory: str | Path, expected_meta: dict[str, Any] | None = None) -> CropCache:
    """Read a cache written by :func:`save_crop_cache` (crops memory-mapped).

    Raises:
        FileNotFoundError: no complete cache there; ValueError: built with other settings than ``expected_meta``.
    """
    directory = Path(directory)
    meta_path = directory / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"no complete crop cache in {directory} (meta.json missing); run the 'precrop' step")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if expected_meta is not None and meta != expected_meta:
        diff = sorted(k for k in set(meta) | set(expected_meta) if meta.get(k) != expected_meta.get(k))
        raise ValueError(f"crop cache {directory} was built with other settings ({diff}); delete it or rebuild with 'precrop'")
    arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r" if name == "crops" else None) for name in _ARRAYS}
    return CropCache(**arrays, meta=meta)


__all__ = ["CropCache", "build_crop_cache", "cache_meta", "load_crop_cache", "save_crop_cache"]
