"""Pre-cropped person windows for fast distillation on a CPU: decode every frame once, crop once.

Decoding full-size JPEGs and warping 2*delta+1 crops per window costs more than a small backbone's
forward pass, so :func:`build_crop_cache` does it once for every training window and writes the
result as ``.npy`` files (crops memory-mapped, so the cache may exceed RAM).

A window is one labelled person in one key frame. All its frames are cropped with ONE affine (the
key frame's box enlarged by ``padding`` and fitted to the model aspect ratio), as the runtime does;
frames outside the video are padded by :func:`tdmi_core.model_input.window_frames` (the window
rule the runtime serves with). The crop keeps ``context`` x more surroundings than the model sees, at the model's
pixel scale, so training augmentation (scale, rotation, shift) finds real image content instead of
black borders. Targets are the key frame's teacher keypoints in cache-crop pixels; they are encoded
to heatmaps after augmentation.

With ``next_frame`` a window also keeps the frame after its last one and the same track's teacher
joints in the frame after the key frame, cropped with the same affine: the next key frame's window
overlaps this one in all but one frame, so training can ask the two predictions to move as the
teacher's joints move (:mod:`tdmi_core.train.distill`, ``velocity_weight``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tdmi_core.data.dataset import FrameReader, gt_sample_refs
from tdmi_core.data.posetrack import PersonAnnotation, VideoRecord
from tdmi_core.geometry import crop_affine_for_box, transform_points, warp_crop
from tdmi_core.model_input import window_frames

logger = logging.getLogger(__name__)

CACHE_VERSION = 2
_ARRAYS = ("crops", "keypoints", "visible", "affine", "video_index", "frame_index", "track_id")
_NEXT_ARRAYS = ("next_keypoints", "next_visible")


@dataclass(frozen=True)
class CropCache:
    """Cropped training windows (N windows, T = 2*delta+1 frames, K joints).

    Attributes:
        crops: ``[N, T, Hc, Wc, 3]`` uint8 BGR crops in time order (key frame at ``meta["key_index"]``);
            ``(Hc, Wc)`` = the model's input size x ``meta["context"]``. With ``meta["next_frame"]``
            there is one frame more (``[N, T + 1, ...]``): the frame after the window's last one.
        keypoints: ``[N, K, 2]`` float32 key-frame teacher joints in cache-crop pixels.
        visible: ``[N, K]`` float32, 1 where the teacher labelled the joint.
        affine: ``[N, 2, 3]`` float32 source-image -> cache-crop matrix of each window.
        video_index, frame_index, track_id: ``[N]`` int64 origin of each window.
        meta: settings the cache was built with.
        next_keypoints, next_visible: with ``meta["next_frame"]``, the same track's teacher joints in the
            frame after the key frame (same crop affine); ``next_visible`` is 0 where the track has none.
    """

    crops: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    affine: np.ndarray
    video_index: np.ndarray
    frame_index: np.ndarray
    track_id: np.ndarray
    meta: dict[str, Any]
    next_keypoints: np.ndarray | None = None
    next_visible: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    @property
    def window_length(self) -> int:
        """Frames the model sees per window (the stored frames less the optional next one)."""
        return int(self.crops.shape[1]) - int(bool(self.meta.get("next_frame")))


def cache_meta(
    videos: Sequence[VideoRecord],
    input_size_hw: tuple[int, int],
    delta: int,
    padding: float,
    context: float,
    key_frame_stride: int,
    causal: bool,
    next_frame: bool = False,
) -> dict[str, Any]:
    """The settings that decide a cache's content (a cache is reused only when they all match)."""
    return {
        "next_frame": bool(next_frame),
        "version": CACHE_VERSION,
        "input_size_hw": [int(v) for v in input_size_hw],
        "crop_size_hw": [int(round(v * context)) for v in input_size_hw],
        "delta": int(delta),
        "key_index": 2 * int(delta) if causal else int(delta),
        "causal": bool(causal),
        "padding": float(padding),
        "context": float(context),
        "key_frame_stride": int(key_frame_stride),
        "videos": [[v.video_id, v.num_frames, sum(len(f.persons) for f in v.frames)] for v in videos],
    }


def build_crop_cache(
    videos: Sequence[VideoRecord],
    image_root: str | Path,
    directory: str | Path,
    meta: dict[str, Any],
    progress: bool = True,
) -> CropCache:
    """Crop every training window once and write the cache to ``directory``.

    Args:
        videos: teacher-labelled (or PoseTrack) videos from :func:`tdmi_core.data.posetrack.read_split`.
        image_root: directory the frame file names are relative to.
        directory: where the ``.npy`` files go (crops are written through a memory map).
        meta: from :func:`cache_meta` (sizes, delta, padding, context, stride, window rule).
        progress: show a tqdm bar.

    Returns:
        The cache (as :func:`load_crop_cache` returns it). Raises ValueError with no labelled person.
    """
    from tqdm import tqdm

    refs = gt_sample_refs(videos, min_labelled_joints=1, key_frame_stride=meta["key_frame_stride"])
    if not refs:
        raise ValueError("no labelled person in the given videos; check the annotation directory")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meta.json").unlink(missing_ok=True)
    c_h, c_w = meta["crop_size_hw"]
    delta = meta["delta"]
    window = "causal" if meta["causal"] else "symmetric"
    first = refs[0]
    k = videos[first.video_index].frames[first.frame_index].persons[first.person_index].keypoints.shape[0]
    next_frame = bool(meta.get("next_frame"))
    n, t = len(refs), 2 * delta + 1 + int(next_frame)
    crops = np.lib.format.open_memmap(directory / "crops.npy", mode="w+", dtype=np.uint8, shape=(n, t, c_h, c_w, 3))
    keypoints = np.zeros((n, k, 2), np.float32)
    visible = np.zeros((n, k), np.float32)
    affine = np.zeros((n, 2, 3), np.float32)
    next_keypoints = np.zeros((n, k, 2), np.float32)
    next_visible = np.zeros((n, k), np.float32)
    # refs are in (video, frame) order, so a small LRU of decoded frames serves every window once.
    reader = FrameReader(image_root, cache_size=2 * t + 2)
    for i, ref in enumerate(tqdm(refs, desc="pre-crop", unit="win", disable=not progress, mininterval=5)):
        video = videos[ref.video_index]
        _, _, matrix = crop_affine_for_box(np.asarray(ref.box_xyxy), (c_h, c_w), meta["padding"] * meta["context"])
        frames = window_frames(window, ref.frame_index, video.num_frames, delta)
        if next_frame:  # the next key frame's window ends one frame later (padded as the runtime pads)
            next_key = min(ref.frame_index + 1, video.num_frames - 1)
            frames = [*frames, window_frames(window, next_key, video.num_frames, delta)[-1]]
        for j, f in enumerate(frames):
            crops[i, j] = warp_crop(reader(video.frames[f].file_name), matrix, (c_w, c_h))
        person = video.frames[ref.frame_index].persons[ref.person_index]
        keypoints[i] = transform_points(person.keypoints[:, :2].astype(np.float64), matrix)
        visible[i] = (person.keypoints[:, 2] > 0).astype(np.float32)
        affine[i] = matrix
        successor = _same_track(video, ref.frame_index + 1, ref.track_id) if next_frame else None
        if successor is not None:
            next_keypoints[i] = transform_points(successor.keypoints[:, :2].astype(np.float64), matrix)
            next_visible[i] = (successor.keypoints[:, 2] > 0).astype(np.float32)
    crops.flush()
    del crops
    arrays = {
        "keypoints": keypoints, "visible": visible, "affine": affine,
        "video_index": np.array([r.video_index for r in refs], np.int64),
        "frame_index": np.array([r.frame_index for r in refs], np.int64),
        "track_id": np.array([r.track_id for r in refs], np.int64),
    }
    if next_frame:
        arrays.update(next_keypoints=next_keypoints, next_visible=next_visible)
    for name, array in arrays.items():
        np.save(directory / f"{name}.npy", array)
    (directory / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")  # last: marks it complete
    return load_crop_cache(directory, meta)


def load_crop_cache(directory: str | Path, expected_meta: dict[str, Any] | None = None) -> CropCache:
    """Read a cache written by :func:`build_crop_cache` (crops memory-mapped).

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
    names = _ARRAYS + (_NEXT_ARRAYS if meta.get("next_frame") else ())
    arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r" if name == "crops" else None) for name in names}
    return CropCache(**arrays, meta=meta)


def _same_track(video: VideoRecord, frame_index: int, track_id: int) -> PersonAnnotation | None:
    """The person of ``track_id`` in frame ``frame_index`` (None outside the video, untracked or absent)."""
    if track_id < 0 or not 0 <= frame_index < video.num_frames:
        return None
    return next((p for p in video.frames[frame_index].persons if p.track_id == track_id), None)


__all__ = ["CropCache", "build_crop_cache", "cache_meta", "load_crop_cache"]
