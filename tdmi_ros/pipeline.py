"""The pose node's compute side, free of ROS: a bounded queue and one worker thread that runs
tracking and the streaming TDMI estimator, so subscription callbacks never wait for inference.

Real-time rule: the queue holds at most ``queue_depth`` frames. When a new frame arrives at a full
queue, the oldest waiting frame is skipped (counted as ``compute_behind``), and a frame older than
``max_frame_age_s`` when the worker reaches it is skipped too, so latency stays bounded instead of
growing; a skipped frame simply never enters the temporal window.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tdmi_ros.diagnostics import PipelineStats

_logger = logging.getLogger(__name__)

SKIP_REASON = "compute_behind"


class Estimator(Protocol):
    """What the pipeline needs from ``tdmi_core.runtime.StreamingPoseEstimator``."""

    delta: int

    def push(self, image_bgr: np.ndarray, tracks: Sequence[Any], token: Any = None) -> list[Any]: ...

    def flush(self) -> list[Any]: ...

    def reset(self) -> None: ...


@dataclass(frozen=True)
class FrameJob:
    """One paired frame for the worker.

    Attributes:
        token: returned with this frame's poses (the node passes the image header).
        image_bgr: ``[H, W, 3]`` uint8.
        boxes_xyxy: ``[N, 4]`` float64 person boxes inside the image.
        scores: ``[N]`` detection scores.
        track_ids: ``[N]`` int64, -1 where the detector gave no id.
        received_s: monotonic time the image arrived (for latency).
    """

    token: Any
    image_bgr: np.ndarray
    boxes_xyxy: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray
    received_s: float


@dataclass(frozen=True)
class _Reset:
    """Queue marker: flush the current sequence and start a new one (source restarted)."""


ResultCallback = Callable[[Any, list[Any]], None]


class PosePipeline:
    """Bounded queue + worker thread around tracker and estimator.

    Args:
        estimator: a streaming estimator (``push`` / ``flush`` / ``reset``).
        tracker: an ``IouTracker``-like object (``update(boxes, scores) -> ids``, ``reset()``), used
            for frames whose detections carry no track ids.
        on_result: called from the worker thread with ``(token, poses)`` for every output frame.
        stats: where counters, queue depth and latencies go.
        queue_depth: most frames waiting for the worker.
        max_frame_age_s: frames older than this when dequeued are skipped (0 = never).
        flush_after_idle_s: with no new frame for this long, flush the remaining ``delta`` frames
            (edge-padded) so the end of a stream is published too (0 = never).
        max_consecutive_errors: after this many failed frames in a row the pipeline reports itself
            unhealthy (``healthy`` False) but keeps trying.
    """

    def __init__(
        self,
        estimator: Estimator,
        tracker: Any,
        on_result: ResultCallback,
        stats: PipelineStats,
        queue_depth: int = 2,
        max_frame_age_s: float = 0.0,
        flush_after_idle_s: float = 0.0,
        max_consecutive_errors: int = 10,
    ) -> None:
        if queue_depth < 1:
            raise ValueError(f"queue_depth must be >= 1, got {queue_depth}")
        self.estimator = estimator
        self.tracker = tracker
        self.on_result = on_result
        self.stats = stats
        self.queue_depth = int(queue_depth)
        self.max_frame_age_s = float(max_frame_age_s)
        self.flush_after_idle_s = float(flush_after_idle_s)
        self.max_consecutive_errors = int(max_consecutive_errors)
        self._queue: deque[FrameJob | _Reset] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._consecutive_errors = 0
        self._pending_frames = 0  # pushed but not yet emitted (for idle flush)
        self._last_push_s = 0.0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="tdmi_pose_worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the worker after the frame in progress; waiting frames are discarded."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                _logger.warning("pose worker did not stop within %.1f s", timeout_s)
        self._thread = None

    @property
    def healthy(self) -> bool:
        return self._consecutive_errors < self.max_consecutive_errors and (
            self._thread is None or self._thread.is_alive()
        )

    @property
    def depth(self) -> int:
        with self._cond:
            return sum(isinstance(j, FrameJob) for j in self._queue)

    # ------------------------------------------------------------------ input (any thread, never blocks)
    def submit(self, job: FrameJob) -> None:
        with self._cond:
            waiting = [j for j in self._queue if isinstance(j, FrameJob)]
            if len(waiting) >= self.queue_depth:
                self._queue.remove(waiting[0])
                self.stats.drop(SKIP_REASON)
            self._queue.append(job)
            self.stats.queue(sum(isinstance(j, FrameJob) for j in self._queue), self.queue_depth)
            self._cond.notify()

    def request_reset(self) -> None:
        """Flush and restart the sequence once the frames already queued are processed."""
        with self._cond:
            self._queue.append(_Reset())
            self._cond.notify()

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    timeout = None
                    if self.flush_after_idle_s > 0 and self._pending_frames:
                        timeout = max(0.0, self._last_push_s + self.flush_after_idle_s - time.monotonic())
                        if timeout == 0.0:
                            break
                    self._cond.wait(timeout)
                if self._stop:
                    return
                job = self._queue.popleft() if self._queue else None
                self.stats.queue(sum(isinstance(j, FrameJob) for j in self._queue), self.queue_depth)
            if job is None:  # idle: publish the tail of the stream
                self._guarded(self._flush)
            elif isinstance(job, _Reset):
                self._guarded(self._flush)
                self.tracker.reset()
            else:
                self._guarded(lambda job=job: self._process(job))

    def _guarded(self, fn: Callable[[], None]) -> None:
        try:
            fn()
            self._consecutive_errors = 0
        except Exception as e:  # noqa: BLE001 - one bad frame must not stop the node; counted and logged
            self._consecutive_errors += 1
            self.last_error = f"{type(e).__name__}: {e}"
            self.stats.drop("inference_error")
            _logger.error("processing a frame failed (%d in a row), restarting the sequence: %s",
                          self._consecutive_errors, self.last_error, exc_info=self._consecutive_errors == 1)
            self._pending_frames = 0
            try:
                self.estimator.reset()
                self.tracker.reset()
            except Exception:  # noqa: BLE001
                _logger.exception("estimator reset failed")

    def _flush(self) -> None:
        outputs = self.estimator.flush()
        self._pending_frames = 0
        for frame in outputs:
            self._emit(frame)

    def _process(self, job: FrameJob) -> None:
        from tdmi_core.runtime.types import TrackedBox

        now = time.monotonic()
        if self.max_frame_age_s > 0 and now - job.received_s > self.max_frame_age_s:
            self.stats.drop(SKIP_REASON)
            return
        ids = job.track_ids
        if len(ids) and np.any(ids < 0):
            ids = np.asarray(self.tracker.update(job.boxes_xyxy, job.scores), dtype=np.int64)
        elif not len(ids):
            self.tracker.update(np.zeros((0, 4)), np.zeros(0))  # age the tracks
        tracks = [TrackedBox(int(t), b, float(s)) for t, b, s in zip(ids, job.boxes_xyxy, job.scores)]
        t0 = time.perf_counter()
        outputs = self.estimator.push(job.image_bgr, tracks, token=(job.token, job.received_s))
        self.stats.latency("inference", time.perf_counter() - t0)
        self.stats.tick("processed")
        self._pending_frames += 1
        self._last_push_s = time.monotonic()
        for frame in outputs:
            self._pending_frames -= 1
            self._emit(frame)

    def _emit(self, frame: Any) -> None:
        token, received_s = frame.token
        self.stats.latency("frame_to_output", time.monotonic() - received_s)
        self.on_result(token, frame.poses)
