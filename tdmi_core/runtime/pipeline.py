"""The pose streams on a worker thread (and a head thread): tracking and the streaming TDMI estimator behind a bounded queue.

A producer (the ROS node's callbacks, a video reader) submits :class:`FrameJob` objects and never
waits for inference. A job's ``load`` runs in the worker, so the producer can hand over a frame
before decoding it: a frame skipped because the worker is behind is never decoded. Results come
back through ``on_result`` (head thread, see below), one :class:`~tdmi_core.runtime.types.FramePoses` per
frame, once its window is complete (``delta`` frames later for the symmetric window, at once for a
causal or single-frame one). Queue rules: :class:`~tdmi_core.runtime.worker.FrameWorker`.

Several streams (cameras): each job names its stream; every stream has its own tracker and queue
limit, and each step takes the oldest waiting frame of every stream into one batched estimator call
(:meth:`~tdmi_core.runtime.estimator.StreamingPoseEstimator.push_many`).

Two threads share a step: the worker loads the frames, runs the backbone on their persons
(``own_crop_features``, which reads no estimator state) and gathers the windows (``begin_step``);
a head thread runs the temporal head, decodes, finishes the step (``run_step``, ``end_step``) and
publishes. The next frames' backbone thus overlaps this step's head (on a 2-core CPU the second
core is otherwise partly idle), while the estimator's state is only ever touched by one thread at
a time: the worker waits for the head thread before ``begin_step``, a flush or a restart.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tdmi_core.runtime.estimator import EstimatorStep
from tdmi_core.runtime.stats import PipelineStats
from tdmi_core.runtime.types import FramePoses, PersonPose, StreamFrame, TrackedBox
from tdmi_core.runtime.worker import SKIP_REASON, DroppedFrame, FrameWorker

_logger = logging.getLogger(__name__)

__all__ = ["SKIP_REASON", "DroppedFrame", "FrameInput", "FrameJob", "PosePipeline"]

ERROR_REASON = "inference_error"


class Estimator(Protocol):
    """What the pipeline needs from :class:`~tdmi_core.runtime.estimator.StreamingPoseEstimator`."""

    delta: int

    def own_crop_features(self, frames: Sequence[StreamFrame]) -> Any: ...

    def begin_step(self, frames: Sequence[StreamFrame], own_features: Any = None) -> EstimatorStep: ...

    def run_step(self, step: EstimatorStep) -> list[PersonPose]: ...

    def end_step(self, step: EstimatorStep, poses: list[PersonPose]) -> list[list[FramePoses]]: ...

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
    """Bounded queue + worker thread (and a head thread) around trackers and estimator.

    Args:
        estimator: a streaming estimator (the step parts of ``push_many``, ``flush``, ``reset``).
        make_tracker: builds a stream's tracker, which assigns ids to frames whose boxes carry none
            (``update(boxes, scores) -> ids``, ``reset()``), e.g. ``IouTracker``.
        on_result: called with the :class:`FramePoses` of every output frame, in order, from the head
            thread (from the worker thread for the frames a flush publishes); its ``token`` is the job's.
        stats: counters, queue depth and latencies.
        queue_depth, max_frame_age_s, drop_when_full: queue rules (:class:`FrameWorker`), per stream.
        flush_after_idle_s: with no new frame for this long, flush the remaining ``delta`` frames
            (edge-padded) so the end of a stream is published too (0 = never).
        on_drop: ``(reason, message)`` of an unusable frame; default: counted in ``stats``.
        max_consecutive_errors: failed frames (steps) in a row before :attr:`healthy` turns False.
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
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.worker: FrameWorker[FrameJob] = FrameWorker(
            None, stats, queue_depth=queue_depth, drop_when_full=drop_when_full,
            max_age_s=max_frame_age_s, idle_s=flush_after_idle_s, on_idle=self._flush, on_drop=on_drop,
            on_error=self._restart, error_reason=ERROR_REASON, max_consecutive_errors=max_consecutive_errors,
            name="tdmi_pose_worker", handle_batch=self._process,
        )
        self._head_thread: ThreadPoolExecutor | None = None
        self._head: Future[bool] | None = None  # the step on the head thread; True when it succeeded
        self._head_errors = 0  # steps failed in a row on the head thread
        self._head_error: str | None = None

    # ------------------------------------------------------------------ control (any thread)
    def start(self) -> None:
        """Start the worker and head threads."""
        if self._head_thread is None:
            self._head_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tdmi_pose_head")
        self.worker.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the frame in progress (its results are published); waiting frames are discarded."""
        self.worker.stop(timeout_s)
        if self._head_thread is not None:
            self._head_thread.shutdown(wait=True)  # at most the step in progress
            self._head_thread = None

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
        return self.worker.healthy and self._head_errors < self.max_consecutive_errors

    @property
    def last_error(self) -> str | None:
        """The last failure, for diagnostics."""
        return self._head_error if self._head_errors else self.worker.last_error

    @property
    def depth(self) -> int:
        """Frames waiting."""
        return self.worker.depth

    # ------------------------------------------------------------------ worker thread
    def _process(self, jobs: list[FrameJob]) -> None:
        """One step: a frame of each of several streams through the estimator; the head runs on the head thread."""
        frames = []
        for job in jobs:
            try:
                frames.append(self._load(job))
            except DroppedFrame as e:  # this frame only; the other streams' frames go on
                self.worker.on_drop(e.reason, str(e))
        if not frames:
            return
        start = time.perf_counter()
        own_features = self.estimator.own_crop_features(frames)  # overlaps the previous step's head
        self._await_head()
        step = self.estimator.begin_step(frames, own_features)
        assert self._head_thread is not None, "start() the pipeline first"
        self._head = self._head_thread.submit(self._finish_step, step, start)

    def _finish_step(self, step: EstimatorStep, start: float) -> bool:
        """Head thread: the temporal head, the end of the step and its results. False (counted, logged) on failure."""
        try:
            outputs = self.estimator.end_step(step, self.estimator.run_step(step))
            self.stats.latency("inference", time.perf_counter() - start)
            for _ in range(step.num_frames):
                self.stats.tick("processed")
            self._emit([poses for out in outputs for poses in out])
        except Exception as e:  # noqa: BLE001 - as the worker: one bad step must not stop the pipeline
            self._head_errors += 1
            self._head_error = f"{type(e).__name__}: {e}"
            self.stats.drop(ERROR_REASON)
            if self._head_errors == 1 or self._head_errors % 100 == 0:  # not once per frame
                _logger.error("tdmi_pose_head: a step failed (%d in a row): %s", self._head_errors, self._head_error,
                              exc_info=self._head_errors == 1)
            return False
        if step.windows:  # only a step that ran the head ends a streak of failed heads
            self._head_errors = 0
        return True

    def _await_head(self) -> None:
        """Wait for the step on the head thread (its results are out by then); after its failure, start new sequences."""
        head, self._head = self._head, None
        if head is not None and not head.result():
            self._reset_sequences()

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
        self._await_head()
        for stream in self.trackers:
            self._emit(self.estimator.flush(stream))

    def _flush_and_restart(self, stream: Hashable) -> None:
        self._await_head()
        self._emit(self.estimator.flush(stream))
        if stream in self.trackers:
            self.trackers[stream].reset()

    def _restart(self) -> None:
        """After a failed step: start new sequences (the failed one's windows cannot be trusted)."""
        self._await_head()
        self._reset_sequences()

    def _reset_sequences(self) -> None:
        self.estimator.reset()
        for tracker in self.trackers.values():
            tracker.reset()
