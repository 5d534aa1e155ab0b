"""Streaming multi-person TDMI inference with per-person backbone feature reuse.

Each ``push`` adds one frame and its tracked boxes and returns the poses of the key frame whose
window just became complete: the frame ``delta`` frames back for the paper's symmetric window
``[t - delta, t + delta]``, the frame just pushed for a causal window ``[t - 2 delta, t]`` or a
single-frame model (the window kind comes from the model config; :mod:`tdmi_core.model_input`
holds the rule, shared with training). Work per push:

1. every person of key frame ``t`` gets its window's ``2 * delta + 1`` frame indices (edge-padded),
   all seen through **one** crop box (the key frame's, see modes below);
2. the backbone features each window needs come from the person's cache; the missing ones are
   cropped and go through the backbone in one batched call for all persons, and each frame's
   features are pooled once for the TDE (``TemporalHead.split_inputs``: only those pooled stage
   features and the final stage are kept). In aligned mode the new frame's persons go through the
   backbone first, with their own boxes (:meth:`StreamingPoseEstimator.own_crop_features`, which
   reads no state, so a pipeline can run it on one thread while the previous head runs on another);
3. all windows go through the temporal head in one batched call; heatmaps are decoded and mapped
   back through each window's inverse affine.

Modes:

- ``"exact"`` — the paper's rule: each key frame's window is cropped with that key frame's own
  detection box. Boxes move every frame, so almost nothing is reused: ``2 * delta + 1`` backbone
  passes per person per frame.
- ``"streaming"`` — each track holds its crop box until the new detection box moves or resizes by
  more than ``hold_threshold`` (fraction of the crop size); consecutive windows then share one
  crop, so each new frame costs one backbone pass per person while the box is held.
- ``"aligned"`` — each frame of a person is cropped once, with its own box, and goes through the
  backbone once; a window keyed on another frame resamples those features into the key frame's box
  (:mod:`tdmi_core.runtime.align`, RoIAlign on features) instead of re-cropping. Windows use the
  exact mode's boxes; only the supporting frames' features are approximated (their pooled stage
  features are resampled: pooling a re-crop and resampling the pooled crop differ slightly).

:meth:`StreamingPoseEstimator.push_many` steps several streams (cameras) at once, with one
backbone call and one head call for the persons of all of them.

Supporting frames are real frames whether or not the detector saw the person in them (the
paper crops neighbouring frames with the key box); padding applies only where no frame exists:
before the first frame and, at :meth:`StreamingPoseEstimator.flush`, after the last one. A track
that disappears has its remaining key frames emitted on schedule and is then freed. Memory is
bounded: per stream at most ``2 * delta + 1`` images and, per live track, features of those frames.
"""
from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tdmi_core.codec import HeatmapCodec
from tdmi_core.model_input import window_frames, window_span
from tdmi_core.models.configs import NUM_STAGES
from tdmi_core.models.tde import pool_stage_features
from tdmi_core.runtime.align import align_features, feature_affine
from tdmi_core.runtime.backends.base import Backend
from tdmi_core.runtime.buffers import FrameFeatures, FrameRecord, StreamState, TrackState
from tdmi_core.runtime.crops import CropBatch, CropBox, Normalizer, crop_boxes, moved_beyond
from tdmi_core.runtime.shared_joints import suppress_shared_joints
from tdmi_core.runtime.types import FramePoses, PersonPose, StreamFrame, TrackedBox

_logger = logging.getLogger(__name__)

__all__ = ["StreamingPoseEstimator", "EstimatorStep", "RuntimeStats", "MODES"]

MODES: tuple[str, ...] = ("streaming", "exact", "aligned")
FEATURE_STRIDE = 4  # backbone features and heatmaps are at 1/4 of the crop
# On CPU the per-frame feature tensors are made in pieces of at most this size. malloc maps bigger
# blocks afresh and unmaps them when freed (above its mmap threshold, which the ROS node fixes at
# 4 MiB for its memory bound), so they page-fault on every frame: 5 persons' backbone output alone
# is 5.9 MB. Smaller blocks are reused from the heap. ONNX Runtime's CPU cost per crop does not
# depend on the batch, so the pieces cost nothing.
CPU_BLOCK_BYTES = 2 * 1024 * 1024


@dataclass
class RuntimeStats:
    """Counters since the last reset (for tests, diagnostics and the benchmark).

    ``backbone_crops`` counts model-input-sized crops through the backbone (backbone-pass
    equivalents); ``aligned_features`` counts window frames resampled from another crop's features.
    """

    frames: int = 0
    windows: int = 0
    backbone_crops: int = 0
    backbone_calls: int = 0
    head_calls: int = 0
    box_updates: int = 0
    aligned_features: int = 0
    shared_joints: int = 0


@dataclass
class _Window:
    """One person's window of one key frame, on its way through the head."""

    stream: StreamState
    state: TrackState
    box: TrackedBox
    crop: CropBox
    frames: list[int]


@dataclass
class EstimatorStep:
    """One :meth:`StreamingPoseEstimator.push_many` step between ``begin_step`` and ``end_step``.

    Attributes:
        num_frames: frames pushed in the step.
        added: per pushed frame, its stream and frame index.
        ready: which pushed frames complete a key frame's window (indices into the step's frames).
        requests: per ready frame, (stream, key frame, last frame available).
        windows: the windows of those key frames' persons, in request order.
        head_inputs: the temporal head's inputs for ``windows`` (None without windows); they live in
            reused buffers, valid until the next ``begin_step``.
    """

    num_frames: int
    added: list[tuple[StreamState, int]]
    ready: list[int]
    requests: list[tuple[StreamState, int, int]]
    windows: list[_Window]
    head_inputs: tuple[Tensor, Tensor] | None


class StreamingPoseEstimator:
    """Frame-by-frame TDMI pose estimation for tracked persons, on one or several streams.

    Args:
        backend: a :class:`~tdmi_core.runtime.backends.base.Backend` (torch, onnxruntime, tensorrt).
        model_cfg: the model's config (uses ``input_size_hw``, ``heatmap_size_hw``, ``delta``, ``window``).
        delta: temporal span; must equal ``model_cfg.delta`` (the head is built for it). None → model's.
        mode: ``"aligned"`` (default), ``"streaming"`` (held crop box) or ``"exact"`` (paper-faithful); see the module.
        hold_threshold: streaming mode: fraction of the crop size the person may move (or the box
            grow/shrink) before the held box is replaced. Other modes use every frame's own box.
        box_padding: box enlargement before the aspect fit (1.25 in the paper family).
        sigma: heatmap sigma of the codec (decoding does not depend on it).
        cache_features: keep backbone features for reuse (True). False recomputes every window
            frame every time — the naive baseline the benchmark compares against (not in aligned mode).
        max_batch: cap on one backend call's batch; defaults to ``backend.max_batch``.
        single_frame: serve the weights as their single-frame twin (every window is the key frame
            repeated, as such weights were trained): no look-ahead, one backbone pass per person-frame.
        shared_joint_distance: where the same joint of two people of a frame lies closer than this
            fraction of the smaller box height, the less confident one gets score 0
            (:mod:`~tdmi_core.runtime.shared_joints`); 0 disables.
    """

    def __init__(
        self,
        backend: Backend,
        model_cfg: Any,
        delta: int | None = None,
        mode: str = "aligned",
        hold_threshold: float = 0.1,
        box_padding: float = 1.25,
        sigma: float = 3.0,
        cache_features: bool = True,
        max_batch: int | None = None,
        single_frame: bool = False,
        shared_joint_distance: float = 0.1,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "aligned" and not cache_features:
            raise ValueError("aligned mode resamples cached features; it cannot run with cache_features=False")
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
        if not shared_joint_distance >= 0:
            raise ValueError(f"shared_joint_distance must be >= 0, got {shared_joint_distance}")
        self.backend = backend
        self.model_cfg = model_cfg
        self.delta = model_delta
        self.window = "single_frame" if single_frame else getattr(model_cfg, "window", "symmetric")
        # frames before / after the key frame: a key frame is emitted `lag` pushes after it came in
        self.reach, self.lag = window_span(self.window, self.delta)
        self.mode = mode
        self.hold_threshold = float(hold_threshold) if mode == "streaming" else 0.0
        self.box_padding = float(box_padding)
        self.shared_joint_distance = float(shared_joint_distance)
        self.cache_features = bool(cache_features)
        self.max_batch = max_batch if max_batch is not None else getattr(backend, "max_batch", None)
        if self.max_batch is not None and self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1 or None, got {self.max_batch}")
        self.input_size_hw = tuple(int(v) for v in model_cfg.input_size_hw)
        # float32 bytes of one person-frame's backbone output [S, C, h, w]
        h, w = (int(v) for v in model_cfg.heatmap_size_hw)
        self._feature_bytes = 4 * NUM_STAGES * int(getattr(model_cfg, "width", 1)) * h * w
        # the head's split inputs (TemporalHead.split_inputs): pooled stage features, some frames' final stage
        self.motion_stride = int(getattr(model_cfg, "tde_stride", 1))
        self.visual_frames = list(model_cfg.visual_frames)
        # The model's own target width and sub-pixel rule (DARK needs the width it was trained with).
        self.codec = HeatmapCodec(self.input_size_hw, tuple(model_cfg.heatmap_size_hw),
                                  getattr(model_cfg, "heatmap_sigma", sigma),
                                  refine=getattr(model_cfg, "decode_refine", "quarter"))
        self.stats = RuntimeStats()
        self._streams: dict[Hashable, StreamState] = {}
        # reused per-call buffers: crops, the normalised backbone input and the head's window batch
        self._crop_batch = CropBatch(self.input_size_hw)
        self._normalizers: dict[tuple[torch.device, torch.dtype], Normalizer] = {}
        self._windows: dict[str, Tensor] = {}

    # ------------------------------------------------------------------ public API
    def reset(self, stream: Hashable | None = None) -> None:
        """Forget frames, tracks and features of ``stream`` (None: of all streams, and the stats).

        The next push of a forgotten stream starts a new sequence.
        """
        if stream is None:
            self._streams.clear()
            self.stats = RuntimeStats()
        else:
            self._streams.pop(stream, None)

    @property
    def num_buffered_frames(self) -> int:
        """Images currently held (at most ``2 * delta + 1`` per stream)."""
        return sum(len(s.frames) for s in self._streams.values())

    @property
    def num_tracks(self) -> int:
        """Tracks currently held."""
        return sum(len(s.tracks) for s in self._streams.values())

    @property
    def num_cached_features(self) -> int:
        """Per-frame backbone features currently cached over all tracks."""
        return len(self.cached_features())

    def cached_features(self) -> list[FrameFeatures]:
        """The per-frame features cached over all tracks (for memory accounting)."""
        return [f for s in self._streams.values() for t in s.tracks.values() for f in t.features.values()]

    def push(self, image_bgr: np.ndarray, tracks: Sequence[TrackedBox], token: Any = None,
             stream: Hashable = 0) -> list[FramePoses]:
        """Add one frame; return the poses of the key frame whose window it completes.

        Args:
            image_bgr: ``[H, W, 3]`` uint8 BGR image.
            tracks: the tracked person boxes of this frame (unique track ids).
            token: anything; returned with this frame's :class:`FramePoses`.
            stream: which stream (camera) the frame belongs to.

        Returns:
            Symmetric window: ``[]`` for the first ``delta`` frames, then exactly one
            :class:`FramePoses` (of the frame ``delta`` pushes back) per push. Causal window or
            single-frame: the poses of this frame.
        """
        return self.push_many([StreamFrame(stream, image_bgr, tracks, token)])[0]

    def push_many(self, frames: Sequence[StreamFrame]) -> list[list[FramePoses]]:
        """One frame for each of several streams, with one backbone call and one head call for all persons.

        The same as ``end_step(begin_step(frames, own_crop_features(frames)))``; a pipeline runs those
        parts itself to overlap the next step's backbone with this step's :meth:`run_step`.

        Returns:
            Per input frame (in order), what :meth:`push` would return for it.
        """
        step = self.begin_step(frames, self.own_crop_features(frames))
        return self.end_step(step, self.run_step(step))

    def own_crop_features(self, frames: Sequence[StreamFrame]) -> list[dict[int, tuple[tuple, FrameFeatures]]] | None:
        """Aligned mode: the backbone features of every person of ``frames`` cropped with their own boxes (one call).

        These are the features the frames' windows read; computing them before the frames are added
        reads no stream state, so a pipeline may run this while the previous step's :meth:`run_step`
        runs on another thread. Pass the result to :meth:`begin_step`.

        Returns:
            Per frame, track id → (crop key, features); None in the other modes (their crops depend
            on held or later boxes, so :meth:`begin_step` computes what they need).
        """
        if self.mode != "aligned":
            return None
        per_frame = []
        for frame in frames:
            image, by_id = self._checked(frame)
            boxes = np.stack([tb.box_xyxy for tb in by_id.values()]) if by_id else np.zeros((0, 4))
            per_frame.append((image, list(by_id), crop_boxes(boxes, self.input_size_hw, self.box_padding)))
        jobs = [(image, crop) for image, _, crops in per_frame for crop in crops]
        features = iter(self._backbone_features([image for image, _ in jobs], [crop for _, crop in jobs]))
        return [{tid: (crop.key, next(features)) for tid, crop in zip(ids, crops)} for _, ids, crops in per_frame]

    def begin_step(self, frames: Sequence[StreamFrame],
                   own_features: list[dict[int, tuple[tuple, FrameFeatures]]] | None = None) -> EstimatorStep:
        """Add one frame per stream and gather the temporal head's inputs of the key frames they complete.

        ``own_features``: :meth:`own_crop_features` of the same ``frames`` (None: computed here as needed).
        Changes stream state: a pipeline must not call it before the previous step's :meth:`end_step`.
        """
        keys = [f.stream for f in frames]
        if len(set(keys)) != len(keys):
            raise ValueError(f"one frame per stream per step; streams {keys} repeat")
        checked = [self._checked(f) for f in frames]  # all valid before any stream changes
        added = [self._add(f.stream, image, by_id, f.token) for f, (image, by_id) in zip(frames, checked)]
        for (stream, index), own in zip(added, own_features or []):
            self._store_own_features(stream, index, own)
        ready = [n for n, (stream, index) in enumerate(added) if index - self.lag >= stream.next_emit]
        requests = [(added[n][0], added[n][1] - self.lag, added[n][1]) for n in ready]
        return EstimatorStep(len(frames), added, ready, requests, *self._start_emit(requests))

    def run_step(self, step: EstimatorStep) -> list[PersonPose]:
        """The temporal head and decoding of ``step``'s windows (reads no stream state; any thread)."""
        return self._run_windows(step.windows, step.head_inputs)

    def end_step(self, step: EstimatorStep, poses: list[PersonPose]) -> list[list[FramePoses]]:
        """Finish ``step`` with its :meth:`run_step` poses: per input frame, what :meth:`push` returns for it."""
        emitted = self._finish_emit(step.requests, poses)
        out: list[list[FramePoses]] = [[] for _ in range(step.num_frames)]
        for n, frame_poses in zip(step.ready, emitted):
            out[n] = [frame_poses]
        for stream, _ in step.added:
            self._evict(stream)
        return out

    def flush(self, stream: Hashable = 0) -> list[FramePoses]:
        """Emit ``stream``'s remaining frames (later frames padded by the edge rule) and end its sequence.

        Its frames, tracks and features are dropped (its next push starts a new sequence); ``stats``
        keep counting until :meth:`reset`.

        Returns:
            One :class:`FramePoses` per frame not yet returned, in order.
        """
        state = self._streams.pop(stream, None)
        if state is None:
            return []
        last = state.next_frame - 1
        return [poses for key in range(state.next_emit, last + 1) for poses in self._emit([(state, key, last)])]

    # ------------------------------------------------------------------ internals
    def _checked(self, frame: StreamFrame) -> tuple[np.ndarray, dict[int, TrackedBox]]:
        """The frame's image and its tracks by id, or ValueError / TypeError for unusable input."""
        image = np.asarray(frame.image_bgr)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ValueError(
                f"image_bgr must be a [H, W, 3] uint8 BGR array, got shape {image.shape} dtype {image.dtype}"
            )
        by_id: dict[int, TrackedBox] = {}
        for tb in frame.tracks:
            if not isinstance(tb, TrackedBox):
                raise TypeError(f"tracks must be TrackedBox objects, got {type(tb).__name__}")
            if tb.track_id in by_id:
                raise ValueError(f"track id {tb.track_id} appears twice in one frame; ids must be unique per frame")
            by_id[tb.track_id] = tb
        return image, by_id

    def _add(self, key: Hashable, image: np.ndarray, by_id: dict[int, TrackedBox], token: Any) -> tuple[StreamState, int]:
        """Store one checked frame; update its tracks' crop boxes. Returns the stream and the frame's index."""
        stream = self._streams.setdefault(key, StreamState())
        f = stream.next_frame
        stream.frames[f] = FrameRecord(image=image, token=token, tracks=by_id)
        # boxes were checked when their TrackedBox was made: the crop regions of all come in one go
        boxes = np.stack([tb.box_xyxy for tb in by_id.values()]) if by_id else np.zeros((0, 4))
        for (tid, tb), crop in zip(by_id.items(), crop_boxes(boxes, self.input_size_hw, self.box_padding)):
            state = stream.tracks.get(tid)
            if state is None:
                state = stream.tracks[tid] = TrackState(track_id=tid)
            if state.held is None or moved_beyond(state.held, crop, self.hold_threshold):
                state.held = crop
                self.stats.box_updates += 1
            state.key_crops[f] = state.held
            state.last_seen = f
        stream.next_frame += 1
        self.stats.frames += 1
        return stream, f

    def _store_own_features(self, stream: StreamState, index: int, own: dict[int, tuple[tuple, FrameFeatures]]) -> None:
        """Cache :meth:`own_crop_features` of frame ``index`` where they are what its windows will read."""
        for tid, (key, features) in own.items():
            state = stream.tracks[tid]
            crop = state.key_crops[index]
            if crop.key == key:  # aligned mode: a frame's own crop is its key crop
                state.features[(index, key)] = features
                state.canvases[index] = crop

    def _emit(self, requests: list[tuple[StreamState, int, int]]) -> list[FramePoses]:
        """The poses of key frames ``(stream, key, last frame available)``, all persons in one head call."""
        return self._finish_emit(requests, self._run_windows(*self._start_emit(requests)))

    def _start_emit(self, requests: list[tuple[StreamState, int, int]]) -> tuple[list[_Window], tuple[Tensor, Tensor] | None]:
        """The windows of key frames ``(stream, key, last frame available)`` and the head's inputs for all of them."""
        windows = [
            _Window(stream, stream.tracks[tid], tb, stream.tracks[tid].key_crops[key],
                    window_frames(self.window, key, last + 1, self.delta))
            for stream, key, last in requests for tid, tb in stream.frames[key].tracks.items()
        ]
        if not windows:
            return windows, None
        self.stats.head_calls += 1
        self.stats.windows += len(windows)
        return windows, self._gather_windows(windows)

    def _run_windows(self, windows: list[_Window], inputs: tuple[Tensor, Tensor] | None) -> list[PersonPose]:
        """The temporal head on ``inputs`` and the decoded poses of ``windows``."""
        if not windows:
            return []
        assert inputs is not None
        return self._decode(self._run_chunked(self.backend.temporal_head, *inputs), windows)

    def _finish_emit(self, requests: list[tuple[StreamState, int, int]], poses: list[PersonPose]) -> list[FramePoses]:
        """Each request's :class:`FramePoses` from the poses of its windows (in request order); marks them emitted."""
        out = []
        for stream, key, _ in requests:
            record = stream.frames[key]
            mine, poses = poses[: len(record.tracks)], poses[len(record.tracks):]
            mine, suppressed = suppress_shared_joints(mine, self.shared_joint_distance)
            self.stats.shared_joints += suppressed
            stream.next_emit = key + 1
            out.append(FramePoses(token=record.token, poses=mine, frame_index=key, image_bgr=record.image,
                                  suppressed_joints=suppressed))
        return out

    def _gather_windows(self, windows: list[_Window]) -> tuple[Tensor, Tensor]:
        """The head's inputs for ``windows``: motion ``[B, T, S, C, h', w']`` and visual ``[B, V, C, h, w]``
        (``TemporalHead.split_inputs``), computing missing features in one batched backbone call."""
        caches = [w.state.features if self.cache_features else {} for w in windows]
        self._compute_missing_features(windows, caches)
        motions: list[Tensor] = []
        visuals: list[Tensor] = []
        moved: dict[str, list[tuple[int, Tensor, np.ndarray]]] = {"motion": [], "visual": []}  # to resample
        for w, cache in zip(windows, caches):
            for position, i in enumerate(w.frames):
                source = self._source_crop(w, i)
                entry = cache[(i, source.key)]
                shifted = source.key != w.crop.key
                if shifted:
                    moved["motion"].append((len(motions), entry.motion,
                                           feature_affine(source, w.crop, FEATURE_STRIDE * self.motion_stride)))
                motions.append(entry.motion)
                if position in self.visual_frames:
                    if shifted:
                        moved["visual"].append((len(visuals), entry.visual[None],
                                               feature_affine(source, w.crop, FEATURE_STRIDE)))
                    visuals.append(entry.visual)
        for out, kind in ((motions, "motion"), (visuals, "visual")):
            self._resample_into(out, moved[kind])
        self.stats.aligned_features += len(moved["motion"])  # window frames resampled
        b = len(windows)
        return (self._window_batch("motion", motions).unflatten(0, (b, len(windows[0].frames))),
                self._window_batch("visual", visuals).unflatten(0, (b, len(self.visual_frames))))

    def _compute_missing_features(self, windows: list[_Window], caches: list[dict]) -> None:
        """Crop every (frame, crop box) the windows need and ``caches`` lack; one backbone call for all."""
        jobs: dict[tuple[int, int, tuple], tuple[dict, int, CropBox, np.ndarray]] = {}
        for w, cache in zip(windows, caches):
            for i in w.frames:
                crop = self._source_crop(w, i)
                if (i, crop.key) not in cache:
                    if self.mode == "aligned":
                        w.state.canvases[i] = crop
                    jobs.setdefault((id(cache), i, crop.key), (cache, i, crop, w.stream.frames[i].image))
        if not jobs:
            return
        features = self._backbone_features([image for *_, image in jobs.values()], [c for _, _, c, _ in jobs.values()])
        for (cache, i, crop, _), frame_features in zip(jobs.values(), features):
            cache[(i, crop.key)] = frame_features

    def _backbone_features(self, images: list[np.ndarray], crops: list[CropBox]) -> list[FrameFeatures]:
        """One crop per (image, crop box) through the backbone (one batch, in pieces on CPU), pooled once for the TDE."""
        if not crops:
            return []
        batch = self._normalizer()(self._crop_batch(images, [c.matrix for c in crops]))
        step = min(n for n in (self.max_batch, self._cpu_piece(self._feature_bytes), len(crops)) if n)
        out: list[FrameFeatures] = []
        for i in range(0, len(crops), step):  # pooled per piece: the whole batch's features never exist at once
            feats = self.backend.backbone(batch[i : i + step])
            motion, visual = pool_stage_features(feats, self.motion_stride), feats[:, -1].clone()  # other stages not kept
            out += [FrameFeatures(m, v) for m, v in zip(motion, visual)]
        self.stats.backbone_calls += 1
        self.stats.backbone_crops += len(crops)
        return out

    def _cpu_piece(self, item_bytes: int) -> int | None:
        """Items of ``item_bytes`` per call that keep its tensors under :data:`CPU_BLOCK_BYTES` on CPU (else None)."""
        if torch.device(self.backend.device).type != "cpu":
            return None
        return max(1, CPU_BLOCK_BYTES // max(item_bytes, 1))

    def _resample_into(self, out: list[Tensor], moved: list[tuple[int, Tensor, np.ndarray]]) -> None:
        """Replace ``out[position]`` by its features ``[S, C, h, w]`` resampled through its affine (few calls
        for all), in the shape ``out[position]`` had."""
        if not moved:
            return
        step = self._cpu_piece(moved[0][1].numel() * 4) or len(moved)
        for i in range(0, len(moved), step):
            part = moved[i : i + step]
            aligned = align_features(torch.stack([f for _, f, _ in part]), np.stack([a for *_, a in part]))
            for (position, _, _), feature in zip(part, aligned):
                out[position] = feature.reshape(out[position].shape)

    def _source_crop(self, window: _Window, frame: int) -> CropBox:
        """The crop box whose features stand for ``frame`` in ``window``.

        Exact and streaming: the window's own box. Aligned: the box the frame was (or will be)
        cropped with once: its own detection's, or the window's box where the track was not detected.
        """
        if self.mode != "aligned":
            return window.crop
        state = window.state
        return state.canvases.get(frame) or state.key_crops.get(frame) or window.crop

    def _normalizer(self) -> Normalizer:
        """The normaliser for the backend's device and dtype (built once; NHWC when the backend runs NHWC)."""
        key = (torch.device(self.backend.device), self.backend.input_dtype)
        if key not in self._normalizers:
            self._normalizers[key] = Normalizer(*key, channels_last=getattr(self.backend, "channels_last", False))
        return self._normalizers[key]

    def _window_batch(self, name: str, features: list[Tensor]) -> Tensor:
        """``features`` stacked into the reused buffer ``name``: one copy each, no allocation per frame."""
        first = features[0]
        shape = (len(features), *first.shape)
        buf = self._windows.get(name, torch.empty(0))
        if buf.shape[0] < shape[0] or buf.shape[1:] != shape[1:] or buf.dtype != first.dtype or buf.device != first.device:
            buf = self._windows[name] = torch.empty(shape, dtype=first.dtype, device=first.device)
        return torch.stack(features, out=buf[: shape[0]])

    def _run_chunked(self, fn: Any, *inputs: Tensor) -> Tensor:
        n = inputs[0].shape[0]
        if self.max_batch is None or n <= self.max_batch:
            return fn(*inputs)
        return torch.cat([fn(*(x[i : i + self.max_batch] for x in inputs)) for i in range(0, n, self.max_batch)])

    def _decode(self, heatmaps: Tensor, windows: list[_Window]) -> list[PersonPose]:
        hm = heatmaps.detach().float().cpu().numpy()
        coords, scores = self.codec.decode(hm)  # [B, K, 2] crop pixels, [B, K], float32
        inverse = np.stack([w.crop.inverse for w in windows]).astype(np.float32)  # [B, 2, 3]
        xy = coords @ inverse[:, :, :2].transpose(0, 2, 1) + inverse[:, None, :, 2]  # crop → image, float32
        keypoints = np.concatenate([xy, scores[..., None]], axis=2)  # [B, K, 3]
        mean_scores = scores.mean(axis=1)
        return [
            PersonPose(track_id=w.box.track_id, box_xyxy=w.box.box_xyxy.copy(), box_score=w.box.score,
                       keypoints=keypoints[n], score=float(mean_scores[n]))
            for n, w in enumerate(windows)
        ]

    def _evict(self, stream: StreamState) -> None:
        """Drop what no pending window of ``stream`` (key frames ``>= next_emit``) can use."""
        next_key = stream.next_emit
        min_frame = next_key - self.reach
        for i in [i for i in stream.frames if i < min_frame]:
            del stream.frames[i]
        # freed once no key frame of it is left to emit and it has not been seen for delta frames
        stale = min(next_key, stream.next_frame - self.delta)
        for tid in list(stream.tracks):
            state = stream.tracks[tid]
            if state.last_seen < stale:
                del stream.tracks[tid]
            else:
                state.evict(min_feature_frame=min_frame, min_key_frame=next_key)
