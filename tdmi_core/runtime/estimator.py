"""Streaming multi-person TDMI inference with per-person backbone feature reuse.

Each ``push`` adds one frame and its tracked boxes and returns the poses of the frame ``delta``
frames back (its window ``[t - delta, t + delta]`` is then complete). Work per push:

1. every person of key frame ``t`` gets a window of ``2 * delta + 1`` frame indices (edge-padded),
   all cropped with **one** crop box (the key frame's, see modes below);
2. the backbone features each window needs are looked up in the person's cache by
   ``(frame index, crop box)``; the missing ones are cropped and go through the backbone in one
   batched call for all persons;
3. all windows go through the temporal head in one batched call; heatmaps are decoded and mapped
   back through each window's inverse affine.

Modes:

- ``"exact"`` — the paper's rule: each key frame's window is cropped with that key frame's own
  detection box. Boxes move every frame, so almost nothing is reused: ``2 * delta + 1`` backbone
  passes per person per frame.
- ``"streaming"`` — each track holds its crop box until the new detection box moves or resizes by
  more than ``hold_threshold`` (fraction of the crop size); consecutive windows then share one
  crop, so each new frame costs one backbone pass per person. Inside a window the rule is the
  same as exact (one box for all frames); only *which* box differs, by at most the threshold.

Supporting frames are real frames whether or not the detector saw the person in them (the
paper crops neighbouring frames with the key box); padding applies only where no frame exists:
before the first frame and, at :meth:`StreamingPoseEstimator.flush`, after the last one. A track
that disappears has its remaining key frames emitted on schedule and is then freed. Memory is
bounded: at most ``2 * delta + 1`` images and, per live track, features of those frames.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tdmi_core.codec import HeatmapCodec
from tdmi_core.model_input import window_frame_indices
from tdmi_core.runtime.backends.base import Backend
from tdmi_core.runtime.buffers import FrameRecord, TrackState
from tdmi_core.runtime.crops import CropBatch, CropBox, Normalizer, crop_boxes, moved_beyond
from tdmi_core.runtime.types import FramePoses, PersonPose, TrackedBox

_logger = logging.getLogger(__name__)

__all__ = ["StreamingPoseEstimator", "RuntimeStats", "MODES"]

MODES: tuple[str, ...] = ("streaming", "exact")


@dataclass
class RuntimeStats:
    """Counters since the last reset (for tests, diagnostics and the benchmark)."""

    frames: int = 0
    windows: int = 0
    backbone_crops: int = 0
    backbone_calls: int = 0
    head_calls: int = 0
    box_updates: int = 0


class StreamingPoseEstimator:
    """Frame-by-frame TDMI pose estimation for tracked persons.

    Args:
        backend: a :class:`~tdmi_core.runtime.backends.base.Backend` (torch, onnxruntime, tensorrt).
        model_cfg: the model's config (uses ``input_size_hw``, ``heatmap_size_hw``, ``delta``).
        delta: temporal span; must equal ``model_cfg.delta`` (the head is built for it). None → model's.
        mode: ``"streaming"`` (held crop box, features reused) or ``"exact"`` (paper-faithful).
        hold_threshold: streaming mode: fraction of the crop size the person may move (or the box
            grow/shrink) before the held box is replaced. Ignored in exact mode (acts as 0).
        box_padding: box enlargement before the aspect fit (1.25 in the paper family).
        sigma: heatmap sigma of the codec (decoding does not depend on it).
        cache_features: keep backbone features for reuse (True). False recomputes every window
            frame every time — the naive baseline the benchmark compares against.
        max_batch: cap on one backend call's batch; defaults to ``backend.max_batch``.
    """

    def __init__(
        self,
        backend: Backend,
        model_cfg: Any,
        delta: int | None = None,
        mode: str = "streaming",
        hold_threshold: float = 0.1,
        box_padding: float = 1.25,
        sigma: float = 3.0,
        cache_features: bool = True,
        max_batch: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if getattr(model_cfg, "window", "symmetric") != "symmetric":
            # a causal model needs a window ending at the key frame; serving it with this one would be wrong
            raise ValueError(f"model {model_cfg.name!r} has a {model_cfg.window} window; the streaming runtime "
                             "serves symmetric windows (t-delta..t+delta) only")
        model_delta = int(model_cfg.delta)
        if delta is not None and int(delta) != model_delta:
            raise ValueError(
                f"delta={delta} but the model's temporal head is built for delta={model_delta}; "
                "leave delta unset or load a model config with that delta"
            )
        if not hold_threshold >= 0:
            raise ValueError(f"hold_threshold must be >= 0, got {hold_threshold}")
        if not box_padding > 0:
            raise ValueError(f"box_padding must be > 0, got {box_padding}")
        self.backend = backend
        self.model_cfg = model_cfg
        self.delta = model_delta
        self.mode = mode
        self.hold_threshold = float(hold_threshold) if mode == "streaming" else 0.0
        self.box_padding = float(box_padding)
        self.cache_features = bool(cache_features)
        self.max_batch = max_batch if max_batch is not None else getattr(backend, "max_batch", None)
        if self.max_batch is not None and self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1 or None, got {self.max_batch}")
        self.input_size_hw = tuple(int(v) for v in model_cfg.input_size_hw)
        # The model's own target width and sub-pixel rule (DARK needs the width it was trained with).
        self.codec = HeatmapCodec(self.input_size_hw, tuple(model_cfg.heatmap_size_hw),
                                  getattr(model_cfg, "heatmap_sigma", sigma),
                                  refine=getattr(model_cfg, "decode_refine", "quarter"))
        self.stats = RuntimeStats()
        self._frames: dict[int, FrameRecord] = {}
        self._tracks: dict[int, TrackState] = {}
        self._next_frame = 0
        self._next_emit = 0
        # reused per-call buffers: crops, the normalised backbone input and the head's window batch
        self._crop_batch = CropBatch(self.input_size_hw)
        self._normalizers: dict[tuple[torch.device, torch.dtype], Normalizer] = {}
        self._windows = torch.empty(0)

    # ------------------------------------------------------------------ public API
    def reset(self) -> None:
        """Forget all frames, tracks and features; the next push starts a new sequence."""
        self._frames.clear()
        self._tracks.clear()
        self._next_frame = 0
        self._next_emit = 0
        self.stats = RuntimeStats()

    @property
    def num_buffered_frames(self) -> int:
        """Images currently held (at most ``2 * delta + 1``)."""
        return len(self._frames)

    @property
    def num_tracks(self) -> int:
        """Tracks currently held."""
        return len(self._tracks)

    @property
    def num_cached_features(self) -> int:
        """Per-frame backbone features currently cached over all tracks."""
        return sum(len(s.features) for s in self._tracks.values())

    def push(self, image_bgr: np.ndarray, tracks: Sequence[TrackedBox], token: Any = None) -> list[FramePoses]:
        """Add one frame; return the poses of the frame ``delta`` frames back once its window is complete.

        Args:
            image_bgr: ``[H, W, 3]`` uint8 BGR image.
            tracks: the tracked person boxes of this frame (unique track ids).
            token: anything; returned with this frame's :class:`FramePoses`.

        Returns:
            ``[]`` for the first ``delta`` frames, then exactly one :class:`FramePoses` per push.
        """
        image = np.asarray(image_bgr)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ValueError(
                f"image_bgr must be a [H, W, 3] uint8 BGR array, got shape {image.shape} dtype {image.dtype}"
            )
        by_id: dict[int, TrackedBox] = {}
        for tb in tracks:
            if not isinstance(tb, TrackedBox):
                raise TypeError(f"tracks must be TrackedBox objects, got {type(tb).__name__}")
            if tb.track_id in by_id:
                raise ValueError(f"track id {tb.track_id} appears twice in one frame; ids must be unique per frame")
            by_id[tb.track_id] = tb

        f = self._next_frame
        self._frames[f] = FrameRecord(image=image, token=token, tracks=by_id)
        # boxes were checked when their TrackedBox was made: the crop regions of all come in one go
        boxes = np.stack([tb.box_xyxy for tb in by_id.values()]) if by_id else np.zeros((0, 4))
        for (tid, tb), crop in zip(by_id.items(), crop_boxes(boxes, self.input_size_hw, self.box_padding)):
            state = self._tracks.get(tid)
            if state is None:
                state = self._tracks[tid] = TrackState(track_id=tid)
            if state.held is None or moved_beyond(state.held, crop, self.hold_threshold):
                state.held = crop
                self.stats.box_updates += 1
            state.key_crops[f] = state.held
            state.last_seen = f
        self._next_frame += 1
        self.stats.frames += 1

        out: list[FramePoses] = []
        if f - self.delta >= self._next_emit:
            out.append(self._emit(f - self.delta, last=f))
        self._evict(next_key=self._next_emit)
        return out

    def flush(self) -> list[FramePoses]:
        """Emit the remaining frames (later frames padded by the edge rule) and end the sequence.

        Frames, tracks and features are dropped (the next push starts a new sequence); ``stats``
        keep counting until :meth:`reset`.

        Returns:
            One :class:`FramePoses` per frame not yet returned, in order.
        """
        last = self._next_frame - 1
        out = [self._emit(t, last=last) for t in range(self._next_emit, last + 1)]
        stats = self.stats
        self.reset()
        self.stats = stats  # counters keep running across sequences until reset()
        return out

    # ------------------------------------------------------------------ internals
    def _emit(self, key: int, last: int) -> FramePoses:
        record = self._frames[key]
        items: list[tuple[TrackState, TrackedBox, CropBox, list[int]]] = []
        for tid, tb in record.tracks.items():
            state = self._tracks[tid]
            crop = state.key_crops[key]
            items.append((state, tb, crop, window_frame_indices(key, last + 1, self.delta)))
        poses: list[PersonPose] = []
        if items:
            windows = self._gather_windows(items)
            heatmaps = self._run_chunked(self.backend.temporal_head, windows)
            self.stats.head_calls += 1
            self.stats.windows += len(items)
            poses = self._decode(heatmaps, items)
        self._next_emit = key + 1
        return FramePoses(token=record.token, poses=poses, frame_index=key, image_bgr=record.image)

    def _gather_windows(self, items: list[tuple[TrackState, TrackedBox, CropBox, list[int]]]) -> Tensor:
        """``[B, T, S, C, h, w]`` windows, computing missing features in one batched backbone call."""
        jobs: dict[tuple[int, int, tuple], tuple[int, CropBox]] = {}
        local: list[dict[tuple[int, tuple], Tensor]] = []
        for state, _, crop, idxs in items:
            cache = state.features if self.cache_features else {}
            local.append(cache)
            for i in idxs:
                if (i, crop.key) not in cache:
                    jobs.setdefault((state.track_id, i, crop.key), (i, crop))
        if jobs:
            keys = list(jobs)
            crops = self._crop_batch([self._frames[i].image for i, _ in jobs.values()],
                                     [c.matrix for _, c in jobs.values()])
            feats = self._run_chunked(self.backend.backbone, self._normalizer()(crops))
            self.stats.backbone_calls += 1
            self.stats.backbone_crops += len(keys)
            by_track = {state.track_id: cache for (state, *_), cache in zip(items, local)}
            for n, (tid, i, ckey) in enumerate(keys):
                by_track[tid][(i, ckey)] = feats[n]  # a view: features are stored without a copy
        window = [cache[(i, crop.key)] for (_, _, crop, idxs), cache in zip(items, local) for i in idxs]
        return self._window_batch(window).unflatten(0, (len(items), len(items[0][3])))

    def _normalizer(self) -> Normalizer:
        """The normaliser for the backend's device and dtype (built once; NHWC when the backend runs NHWC)."""
        key = (torch.device(self.backend.device), self.backend.input_dtype)
        if key not in self._normalizers:
            self._normalizers[key] = Normalizer(*key, channels_last=getattr(self.backend, "channels_last", False))
        return self._normalizers[key]

    def _window_batch(self, features: list[Tensor]) -> Tensor:
        """``features`` stacked into the reused window buffer: one copy each, no allocation per frame."""
        first = features[0]
        shape = (len(features), *first.shape)
        buf = self._windows
        if buf.shape[0] < shape[0] or buf.shape[1:] != shape[1:] or buf.dtype != first.dtype or buf.device != first.device:
            buf = self._windows = torch.empty(shape, dtype=first.dtype, device=first.device)
        return torch.stack(features, out=buf[: shape[0]])

    def _run_chunked(self, fn: Any, x: Tensor) -> Tensor:
        if self.max_batch is None or x.shape[0] <= self.max_batch:
            return fn(x)
        return torch.cat([fn(x[i : i + self.max_batch]) for i in range(0, x.shape[0], self.max_batch)])

    def _decode(
        self, heatmaps: Tensor, items: list[tuple[TrackState, TrackedBox, CropBox, list[int]]]
    ) -> list[PersonPose]:
        hm = heatmaps.detach().float().cpu().numpy()
        coords, scores = self.codec.decode(hm)  # [B, K, 2] crop pixels, [B, K], float32
        inverse = np.stack([crop.inverse for _, _, crop, _ in items]).astype(np.float32)  # [B, 2, 3]
        xy = coords @ inverse[:, :, :2].transpose(0, 2, 1) + inverse[:, None, :, 2]  # crop → image, float32
        keypoints = np.concatenate([xy, scores[..., None]], axis=2)  # [B, K, 3]
        mean_scores = scores.mean(axis=1)
        return [
            PersonPose(track_id=tb.track_id, box_xyxy=tb.box_xyxy.copy(), box_score=tb.score,
                       keypoints=keypoints[n], score=float(mean_scores[n]))
            for n, (_, tb, _, _) in enumerate(items)
        ]

    def _evict(self, next_key: int) -> None:
        """Drop what no pending window (key frames ``>= next_key``) can use."""
        min_frame = next_key - self.delta
        for i in [i for i in self._frames if i < min_frame]:
            del self._frames[i]
        for tid in list(self._tracks):
            state = self._tracks[tid]
            if state.last_seen < next_key:
                del self._tracks[tid]  # no key frame left to emit
            else:
                state.evict(min_feature_frame=min_frame, min_key_frame=next_key)
