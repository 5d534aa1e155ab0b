"""Torch datasets of person windows: 2*delta + 1 frames cropped with the key-frame box's affine.

A sample is one person in one key frame. Ground-truth samples (training / validation) carry
Gaussian heatmap targets from :class:`tdmi_core.codec.HeatmapCodec`; detection samples (prediction)
carry the detector box and score. Each ``__getitem__`` returns a dict of tensors / numbers that
torch's default collate batches (see :class:`WindowSample` for the fields).
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from tdmi_core.codec import HeatmapCodec
from tdmi_core.data.augment import AugmentConfig, WindowTransform, make_window_transform
from tdmi_core.data.detections import FrameDetections, normalise_image_name
from tdmi_core.data.posetrack import VideoRecord
from tdmi_core.geometry import transform_points, warp_crop
from tdmi_core.model_input import pixel_normalization, window_frame_indices
from tdmi_core.skeleton import NUM_KEYPOINTS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleRef:
    """What one sample crops: a box in a key frame (+ the person's keypoints when labelled)."""

    video_index: int
    frame_index: int
    box_xyxy: tuple[float, float, float, float]
    score: float = 1.0
    track_id: int = -1
    person_index: int = -1  # index into FrameRecord.persons, -1 for detections


@dataclass
class WindowSample:
    """One item (tensors batched by torch's default collate).

    Attributes:
        frames: ``[T, 3, H, W]`` float32 RGB crops, ImageNet-normalised, time order (key at delta).
        heatmaps: ``[K, h, w]`` float32 targets (zeros for detection samples).
        target_weight: ``[K]`` float32 joint weights (1 = labelled and inside the crop).
        affine: ``[2, 3]`` float32 source-image -> crop matrix (the same for every frame).
        keypoints_image: ``[K, 3]`` float32 ground truth in source pixels (x, y, labelled); zeros for detections.
        box_xyxy: ``[4]`` float32 key-frame box; score: box score; index/video_index/frame_index/track_id: ints.
    """

    frames: torch.Tensor
    heatmaps: torch.Tensor
    target_weight: torch.Tensor
    affine: torch.Tensor
    keypoints_image: torch.Tensor
    box_xyxy: torch.Tensor
    score: float
    index: int
    video_index: int
    frame_index: int
    track_id: int


def gt_sample_refs(videos: Sequence[VideoRecord], min_labelled_joints: int = 1, key_frame_stride: int = 1) -> list[SampleRef]:
    """One sample per labelled person with at least ``min_labelled_joints`` labelled joints.

    ``key_frame_stride`` > 1 keeps every n-th labelled frame of each video as a key frame (densely
    labelled sets such as the teacher-labelled videos have near-duplicate neighbours).
    """
    if key_frame_stride < 1:
        raise ValueError(f"key_frame_stride must be >= 1, got {key_frame_stride}")
    refs = []
    for v, video in enumerate(videos):
        for f in video.labelled_indices()[::key_frame_stride]:
            for p, person in enumerate(video.frames[f].persons):
                if person.num_labelled >= min_labelled_joints:
                    refs.append(SampleRef(v, f, tuple(float(x) for x in person.box_xyxy), 1.0, person.track_id, p))
    return refs


def detection_sample_refs(
    videos: Sequence[VideoRecord], detections: dict[str, FrameDetections], labelled_only: bool = True
) -> list[SampleRef]:
    """One sample per detector box on the videos' frames (labelled frames only by default: poseval
    scores only those).

    Detection image names are matched to frame file names exactly, else by their last two path parts
    (``<video dir>/<frame>.jpg``, as DCPose pairs them), so a different image-root prefix still matches.

    Raises:
        ValueError: when detections are given but none matches a frame (wrong file or image root).
    """
    def tail(name: str) -> str:
        return "/".join(normalise_image_name(name).split("/")[-2:])

    by_tail = {tail(name): dets for name, dets in detections.items()}
    refs = []
    considered = matched = 0
    for v, video in enumerate(videos):
        for f, frame in enumerate(video.frames):
            if labelled_only and not frame.is_labeled:
                continue
            considered += 1
            dets = detections.get(normalise_image_name(frame.file_name))
            if dets is None:
                dets = by_tail.get(tail(frame.file_name))
            if dets is None:
                continue
            matched += 1
            for box, score in zip(dets.boxes_xyxy, dets.scores):
                if box[2] > box[0] and box[3] > box[1]:
                    refs.append(SampleRef(v, f, tuple(float(x) for x in box), float(score)))
    if detections and considered and not matched:
        example_frame = next(fr.file_name for vid in videos for fr in vid.frames)
        raise ValueError(
            f"none of the {len(detections)} detection image names matches the {considered} frames to predict "
            f"(e.g. detection '{next(iter(detections))}' vs frame '{example_frame}'); use the detection file of "
            "this split, with image names relative to the same image root as the annotations"
        )
    logger.info("detections found for %d of %d frames (%d boxes)", matched, considered, len(refs))
    return refs


class FrameReader:
    """Decodes frames with cv2 and keeps the last ``cache_size`` decoded frames (LRU, per process)."""

    def __init__(self, image_root: str | os.PathLike, cache_size: int = 0) -> None:
        self.image_root = Path(image_root)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def __call__(self, file_name: str) -> np.ndarray:
        """``[H, W, 3]`` uint8 BGR image; raises FileNotFoundError naming the path when unreadable."""
        if file_name in self._cache:
            self._cache.move_to_end(file_name)
            return self._cache[file_name]
        path = self.image_root / file_name
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read frame '{path}' (missing or not an image); check data.image_root")
        if self.cache_size > 0:
            self._cache[file_name] = image
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return image

    def reset(self) -> None:
        self._cache.clear()


class PoseTrackWindowDataset(Dataset):
    """Person windows over PoseTrack-format videos.

    Args:
        videos: Videos from :mod:`tdmi_core.data.posetrack`.
        image_root: Directory the frame file names are relative to.
        refs: Samples to serve (:func:`gt_sample_refs` or :func:`detection_sample_refs`).
        input_size_hw / heatmap_size_hw / sigma: Model crop, heatmap size and Gaussian sigma (heatmap px).
        delta: Frames on each side of the key frame.
        padding: Box enlargement (1.25).
        augment: Augmentation drawn once per window, or None (deterministic crop).
        seed: Base seed; the augmentation of sample i in epoch e uses ``default_rng([seed, e, i])``, so runs
            are reproducible whatever the worker count and resume point.
        frame_cache_size: Decoded frames kept per worker process (0 = none).
    """

    def __init__(
        self,
        videos: Sequence[VideoRecord],
        image_root: str | os.PathLike,
        refs: Sequence[SampleRef],
        input_size_hw: tuple[int, int],
        heatmap_size_hw: tuple[int, int],
        sigma: float = 3.0,
        delta: int = 2,
        padding: float = 1.25,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        frame_cache_size: int = 0,
    ) -> None:
        self.videos = list(videos)
        self.refs = list(refs)
        self.input_size_hw = (int(input_size_hw[0]), int(input_size_hw[1]))
        self.codec = HeatmapCodec(self.input_size_hw, heatmap_size_hw, sigma)
        self.delta = int(delta)
        self.padding = float(padding)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self.reader = FrameReader(image_root, frame_cache_size)
        self._shift, self._scale = pixel_normalization()

    def __len__(self) -> int:
        return len(self.refs)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of an epoch (call before building the epoch's iterator)."""
        self.epoch = int(epoch)

    def window_transform(self, index: int, image_width: int) -> WindowTransform:
        """The crop (with this epoch's augmentation) of sample ``index``."""
        ref = self.refs[index]
        video = self.videos[ref.video_index]
        keypoints = None
        if ref.person_index >= 0:
            keypoints = video.frames[ref.frame_index].persons[ref.person_index].keypoints
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.augment is not None else None
        return make_window_transform(np.asarray(ref.box_xyxy), image_width, self.input_size_hw, self.padding,
                                     keypoints, self.augment, rng, video.keypoint_names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ref = self.refs[index]
        video = self.videos[ref.video_index]
        frame_ids = window_frame_indices(ref.frame_index, video.num_frames, self.delta)
        images = {i: self.reader(video.frames[i].file_name) for i in set(frame_ids)}
        key_image = images[ref.frame_index]
        transform = self.window_transform(index, key_image.shape[1])
        in_h, in_w = self.input_size_hw
        crops = np.empty((len(frame_ids), in_h, in_w, 3), np.uint8)
        for t, i in enumerate(frame_ids):
            if images[i].shape[:2] != key_image.shape[:2]:
                raise ValueError(f"{video.source}: frame '{video.frames[i].file_name}' size {images[i].shape[:2]} "
                                 f"differs from key frame '{video.frames[ref.frame_index].file_name}' {key_image.shape[:2]}")
            crops[t] = warp_crop(images[i], transform.matrix, (in_w, in_h))
        # BGR uint8 -> RGB float, ImageNet-normalised, [T, 3, H, W]
        frames = (crops[..., ::-1].astype(np.float32) - self._shift) * self._scale
        frames_t = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))

        kps_image = np.zeros((NUM_KEYPOINTS, 3), np.float32)
        if ref.person_index >= 0:
            kps_image = video.frames[ref.frame_index].persons[ref.person_index].keypoints.astype(np.float32)
            crop_xy = transform_points(kps_image[:, :2], transform.matrix)[transform.joint_permutation]
            labelled = kps_image[transform.joint_permutation, 2] > 0
            # DCPose rule: joints that leave the crop get no target
            inside = (crop_xy[:, 0] >= 0) & (crop_xy[:, 1] >= 0) & (crop_xy[:, 0] <= in_w) & (crop_xy[:, 1] <= in_h)
            heatmaps, weights = self.codec.encode(crop_xy, (labelled & inside).astype(np.float32))
        else:
            hm_h, hm_w = self.codec.heatmap_size_hw
            heatmaps = np.zeros((NUM_KEYPOINTS, hm_h, hm_w), np.float32)
            weights = np.zeros(NUM_KEYPOINTS, np.float32)
        sample = WindowSample(
            frames=frames_t,
            heatmaps=torch.from_numpy(heatmaps),
            target_weight=torch.from_numpy(weights),
            affine=torch.from_numpy(transform.matrix.astype(np.float32)),
            keypoints_image=torch.from_numpy(kps_image),
            box_xyxy=torch.tensor(ref.box_xyxy, dtype=torch.float32),
            score=float(ref.score),
            index=int(index),
            video_index=ref.video_index,
            frame_index=ref.frame_index,
            track_id=ref.track_id,
        )
        return asdict_shallow(sample)


def asdict_shallow(sample: WindowSample) -> dict[str, Any]:
    """Field dict without ``dataclasses.asdict``'s deep copy of the tensors."""
    return {name: getattr(sample, name) for name in WindowSample.__dataclass_fields__}


def worker_init(worker_id: int) -> None:
    """DataLoader worker set-up: one cv2 thread per worker (the workers are the parallelism)."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def loader_worker_kwargs(num_workers: int) -> dict[str, Any]:
    """DataLoader arguments for ``num_workers`` worker processes.

    Workers are *spawned*, not forked: a fork inherits OpenCV's and OpenMP's thread pools in
    whatever state the parent left them, and a worker then hangs forever on its first warp.
    """
    if num_workers <= 0:
        return {"num_workers": 0}
    return {"num_workers": num_workers, "worker_init_fn": worker_init, "multiprocessing_context": "spawn"}


__all__ = [
    "SampleRef", "WindowSample", "gt_sample_refs", "detection_sample_refs", "FrameReader",
    "PoseTrackWindowDataset", "worker_init", "loader_worker_kwargs", "asdict_shallow",
]
