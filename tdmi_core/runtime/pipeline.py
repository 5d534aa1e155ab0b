"""The pose streams on a worker thread: tracking and the streaming TDMI estimator behind a bounded queue.

A producer (the ROS node's callbacks, a video reader) submits :class:`FrameJob` objects and never
waits for inference. A job's ``load`` runs in the worker, so the producer can hand over a frame
before decoding it: a frame skipped because the worker is behind is never decoded. Results come
back through ``on_result`` (worker thread), one :class:`~tdmi_core.runtime.types.FramePoses` per
frame, once its window is complete (``delta`` frames later for the symmetric window, at once for a
causal or single-frame one). Queue rules: :class:`~tdmi_core.runtime.worker.FrameWorker`.

Several streams (cameras): each job names its stream; every stream has its own tracker and queue
limit, and each step takes the oldest waiting frame of every stream into one batched estimator call
(:meth:`~tdmi_core.runtime.estimator.StreamingPoseEstimator.push_many`).
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tdmi_core.runtime.stats import PipelineStats
from tdmi_core.runtime.types import FramePoses, StreamFrame, TrackedBox
from tdmi_core.runtime.worker import SKIP_REASON, DroppedFrame, FrameWorker

__all__ = ["SKIP_REASON", "DroppedFrame", "FrameInput", "FrameJob", "PosePipeline"]


class Estimator(Protocol):
    """What the pipeline needs from :class:`~tdmi_core.runtime.estimator.StreamingPoseEstimator`."""

    delta: int

    def push_many(self, frames: Sequence[StreamFrame]) -> list[list[FramePoses]]: ...

    def flush(self, stream: Hashable = 0) -> list[FramePoses]: ...

    def reset(self, stream: Hashable | None = None) -> None: ...


class Tracker(Protocol):
    """What the pipeline needs from :class:`~tdmi_core.tracking.IouTracker`."""

    def update(self, boxes_xyxy: np.ndarray, scores: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


@dataclass(frozen=True)
class FrameInput:
    """One frame ready for the estimator.

    Attributes:
        image_bgr: ``[H, W, 3]`` uint8.
        boxes_xyxy: ``[N, 4]`` float64 person boxes inside the image.
        scores: ``[N]`` detection scores.
        track_ids: ``[N]`` int64, -1 where the detector gave no id (then the tracker assigns all ids).
    """

    image_bgr: np.ndarray
    boxes_xyxy: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray


@dataclass(frozen=True)
class FrameJob:
    """One frame for the worker.

    Attributes:
        token: returned with the frame's poses (the node passes the image header).
        load: builds the :class:`FrameInput` in the worker thread (decoding happens here); may raise
            :class:`~tdmi_core.runtime.worker.DroppedFrame` for an unusable frame.
        received_s: monotonic time the frame arrived (queue age, latency).
        stream: the stream (camera) the frame belongs to.
    """

    token: Any
    load: Callable[[], FrameInput]
    received_s: float
    stream: Hashable = 0


class PosePipeline:
    """Bounded queue + worker thread around trackers and estimator.

    Args:
        estimator: a streaming estimator (``push_many`` / ``flush`` / ``reset``).
        make_tracker: builds a stream's tracker, which assigns ids to frames whose boxes carry none
            (``update(boxes, scores) -> ids``, ``reset()``), e.g. ``IouTracker``.
        on_result: called from the worker thread with the :class:`FramePoses` of every output frame
            (its ``token`` is the job's).
        stats: counters, queue depth and latencies.
        queue_depth, max_frame_age_s, drop_when_full: queue rules (:class:`FrameWorker`), per stream.
        flush_after_idle_s: with no new frame for this long, flush the remaining ``delta`` frames
            (edge-padded) so the end of a stream is published too (0 = never).
        on_drop: ``(reason, message)`` of an unusable frame; default: counted in ``stats``.
        max_consecutive_errors: failed frames in a row before :attr:`healthy` turns False.
    """

    def __init__(
        self,
        estimator: Estimator,
        make_tracker: Callable[[], Tracker],
        on_result: Callable[[FramePoses], None],
        stats: PipelineStats,
        queue_depth: int = 2,
        max_frame_age_s: float = 0.0,
        flush_after_idle_s: float = 0.0,
        drop_when_full: bool = True,
        on_drop: Callable[[str, str], None] | None = None,
        max_consecutive_errors: int = 10,
    ) -> None:
        self.estimator = estimator
        self.make_tracker = make_tracker
        self.trackers: dict[Hashable, Tracker] = {}  # per stream, made on its first frame
        self.on_result = on_result
        self.stats = stats
        self.worker: FrameWorker[FrameJob] = FrameWorker(
            None, stats, queue_depth=queue_depth, drop_when_full=drop_when_full,
            max_age_s=max_frame_age_s, idle_s=flush_after_idle_s, on_idle=self._flush, on_drop=on_drop,
            on_error=self._restart, max_consecutive_errors=max_consecutive_errors, name="tdmi_pose_worker",
            handle_batch=self._process,
        )

    # ------------------------------------------------------------------ control (any thread)
    def start(self) -> None:
        """Start the worker thread."""
        self.worker.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the frame in progress; waiting frames are discarded."""
        self.worker.stop(timeout_s)

    def submit(self, job: FrameJob) -> None:
        """Queue a frame (see the queue rules of :class:`FrameWorker`)."""
        self.worker.submit(job, job.received_s, key=job.stream)

    def request_reset(self, stream: Hashable = 0) -> None:
        """Flush and restart ``stream`` once the frames already queued are processed (source restarted)."""
        self.worker.call_soon(lambda: self._flush_and_restart(stream))

    def finish(self) -> None:
        """Offline end of streams: wait for every queued frame, then publish the frames still waiting for
        their window (edge-padded)."""
        self.worker.call_soon(self._flush)
        self.worker.join()

    @property
    def healthy(self) -> bool:
        """False when frames keep failing (see ``max_consecutive_errors``)."""
        return self.worker.healthy

    @property
    def last_error(self) -> str | None:
        """The last failure, for diagnostics."""
        return self.worker.last_error

    @property
    def depth(self) -> int:
        """Frames waiting."""
        return self.worker.depth

    # ------------------------------------------------------------------ worker thread
    def _process(self, jobs: list[FrameJob]) -> None:
        """One step: a frame of each of several streams, through the estimator in one call."""
        frames = []
        for job in jobs:
            try:
                frames.append(self._load(job))
            except DroppedFrame as e:  # this frame only; the other streams' frames go on
                self.worker.on_drop(e.reason, str(e))
        if not frames:
            return
        start = time.perf_counter()
        outputs = self.estimator.push_many(frames)
        self.stats.latency("inference", time.perf_counter() - start)
        for _ in frames:
            self.stats.tick("processed")
        self._emit([poses for out in outputs for poses in out])

    def _load(self, job: FrameJob) -> StreamFrame:
        """Decode a job and give its boxes track ids (the stream's tracker where the detector gave none)."""
        frame = job.load()
        tracker = self.trackers.get(job.stream)
        if tracker is None:
            tracker = self.trackers[job.stream] = self.make_tracker()
        ids = frame.track_ids
        if len(ids) and np.any(ids < 0):
            ids = np.asarray(tracker.update(frame.boxes_xyxy, frame.scores), dtype=np.int64)
        elif not len(ids):
            tracker.update(np.zeros((0, 4)), np.zeros(0))  # age the tracks
        tracks = [TrackedBox(int(t), b, float(s)) for t, b, s in zip(ids, frame.boxes_xyxy, frame.scores)]
        return StreamFrame(job.stream, frame.image_bgr, tracks, token=(job.token, job.received_s))

    def _emit(self, outputs: list[FramePoses]) -> None:
        for frame in outputs:
            token, received_s = frame.token
            self.stats.latency("frame_to_output", time.monotonic() - received_s)
            self.on_result(dataclasses.replace(frame, token=token))

    def _flush(self) -> None:
        for stream in self.trackers:
            self._emit(self.estimator.flush(stream))

    def _flush_and_restart(self, stream: Hashable) -> None:
        self._emit(self.estimator.flush(stream))
        if stream in self.trackers:
            self.trackers[stream].reset()

    def _restart(self) -> None:
        """After a failed step: start new sequences (the failed one's windows cannot be trusted)."""
        self.estimator.reset()
        for tracker in self.trackers.values():
            tracker.reset()
