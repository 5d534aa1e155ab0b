"""A bounded queue and one worker thread: producers hand work over and never wait for it.

The pose pipeline (:mod:`tdmi_core.runtime.pipeline`), the detector node and the offline tools all
run their per-frame work through :class:`FrameWorker`.

Real-time rule (``drop_when_full=True``): at most ``queue_depth`` jobs wait. A job arriving at a full
queue pushes the oldest waiting one out (counted as ``compute_behind``), and a job older than
``max_age_s`` when the worker reaches it is skipped too, so latency stays bounded instead of
growing. Offline (``drop_when_full=False``) ``submit`` waits for room and nothing is skipped.

Jobs may carry a key (a camera): the limit then holds per key, so one busy source cannot push out
another's frames, and a worker built with ``handle_batch`` takes one waiting job of every key at
a time (a step over all cameras).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from tdmi_core.runtime.stats import PipelineStats

_logger = logging.getLogger(__name__)

__all__ = ["SKIP_REASON", "DroppedFrame", "FrameWorker"]

SKIP_REASON = "compute_behind"

JobT = TypeVar("JobT")
_ANY_KEY = object()  # _waiting(): count the jobs of every key


class DroppedFrame(Exception):
    """Raised by a job for an input that cannot be used: it is counted under ``reason`` and the stream goes on.

    Unlike any other error, it does not count as a failure of the worker.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class _Job(Generic[JobT]):
    item: JobT
    received_s: float
    key: Hashable = None


@dataclass(frozen=True)
class _Call:
    """Queue marker: run ``fn`` in the worker once the jobs queued before it are done."""

    fn: Callable[[], None]


class FrameWorker(Generic[JobT]):
    """Runs ``handle(job)`` for each submitted job (or ``handle_batch(jobs)`` for one job per key), in order, on one thread.

    Args:
        handle: the per-job work (worker thread). May raise :class:`DroppedFrame`. None with ``handle_batch``.
        stats: receives queue depth, skips, drops and errors.
        queue_depth: most jobs waiting (per key).
        drop_when_full: True: a new job at a full queue skips the oldest waiting one; False: ``submit`` waits.
        max_age_s: jobs older than this (since ``received_s``) when dequeued are skipped (0 = never).
        idle_s, on_idle: after ``idle_s`` without a job, call ``on_idle()`` once (0 = never).
        on_drop: called with ``(reason, message)`` for a :class:`DroppedFrame`; default: count it in ``stats``.
        on_error: called after ``handle`` raised anything else (e.g. to restart the stream state).
        error_reason: the drop counter of failed jobs.
        max_consecutive_errors: from this many failed jobs in a row, :attr:`healthy` is False (the worker goes on).
        name: the thread's name.
        handle_batch: instead of ``handle``: gets the oldest waiting job and the oldest waiting job of
            every other key queued before the next :meth:`call_soon` call, oldest first (a failure
            counts once for the batch).
    """

    def __init__(
        self,
        handle: Callable[[JobT], None] | None,
        stats: PipelineStats,
        queue_depth: int = 2,
        drop_when_full: bool = True,
        max_age_s: float = 0.0,
        idle_s: float = 0.0,
        on_idle: Callable[[], None] | None = None,
        on_drop: Callable[[str, str], None] | None = None,
        on_error: Callable[[], None] | None = None,
        error_reason: str = "inference_error",
        max_consecutive_errors: int = 10,
        name: str = "tdmi_worker",
        handle_batch: Callable[[list[JobT]], None] | None = None,
    ) -> None:
        if queue_depth < 1:
            raise ValueError(f"queue_depth must be >= 1, got {queue_depth}")
        if (handle is None) == (handle_batch is None):
            raise ValueError("give exactly one of handle and handle_batch")
        self.handle = handle
        self.handle_batch = handle_batch
        self.stats = stats
        self.queue_depth = int(queue_depth)
        self.drop_when_full = bool(drop_when_full)
        self.max_age_s = float(max_age_s)
        self.idle_s = float(idle_s)
        self.on_idle = on_idle
        self.on_drop = on_drop or (lambda reason, _message: stats.drop(reason))
        self.on_error = on_error
        self.error_reason = error_reason
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.name = name
        self.last_error: str | None = None
        self._queue: deque[_Job[JobT] | _Call] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._consecutive_errors = 0
        self._idle_armed = False  # a job ran since the last on_idle

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        """Start the worker thread (no-op when running)."""
        if self._thread is not None:
            return
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the job in progress; waiting jobs are discarded."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                _logger.warning("%s did not stop within %.1f s", self.name, timeout_s)
        self._thread = None

    def join(self) -> None:
        """Wait until every job and call queued so far has run (offline use; the worker keeps running)."""
        done = threading.Event()
        self.call_soon(done.set)
        done.wait()

    @property
    def healthy(self) -> bool:
        """False after ``max_consecutive_errors`` failed jobs in a row, or when the thread died."""
        return self._consecutive_errors < self.max_consecutive_errors and (
            self._thread is None or self._thread.is_alive()
        )

    @property
    def depth(self) -> int:
        """Jobs waiting."""
        with self._cond:
            return self._waiting()

    # ------------------------------------------------------------------ input (any thread)
    def submit(self, job: JobT, received_s: float | None = None, key: Hashable = None) -> None:
        """Queue ``job`` (received at monotonic ``received_s``, default now) under ``key``; never blocks when dropping."""
        entry = _Job(job, time.monotonic() if received_s is None else received_s, key)
        with self._cond:
            if self.drop_when_full:
                if self._waiting(key) >= self.queue_depth:
                    oldest = next(j for j in self._queue if isinstance(j, _Job) and j.key == key)
                    self._queue.remove(oldest)
                    self.stats.drop(SKIP_REASON)
            else:
                while self._waiting(key) >= self.queue_depth and not self._stop:
                    self._cond.wait()
            self._queue.append(entry)
            self.stats.queue(self._waiting(), self.queue_depth)
            self._cond.notify_all()

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the worker after the jobs already queued (e.g. flush and restart a stream)."""
        with self._cond:
            self._queue.append(_Call(fn))
            self._cond.notify_all()

    # ------------------------------------------------------------------ worker
    def _waiting(self, key: Hashable = _ANY_KEY) -> int:
        """Jobs waiting (under ``key``; all when not given)."""
        return sum(isinstance(j, _Job) and (key is _ANY_KEY or j.key == key) for j in self._queue)

    def _take_batch(self, first: _Job[JobT]) -> list[_Job[JobT]]:
        """``first`` and the oldest waiting job of every other key queued before the next call marker."""
        batch, keys = [first], {first.key}
        for entry in list(self._queue):
            if isinstance(entry, _Call):
                break  # a call runs after the jobs queued before it, never overtaken
            if entry.key not in keys:
                batch.append(entry)
                keys.add(entry.key)
                self._queue.remove(entry)
        return batch

    def _fresh(self, entry: _Job[JobT]) -> bool:
        """False (counted as a skip) for a job older than ``max_age_s``."""
        if self.max_age_s > 0 and time.monotonic() - entry.received_s > self.max_age_s:
            self.stats.drop(SKIP_REASON)
            return False
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    timeout = None
                    if self.idle_s > 0 and self._idle_armed:
                        timeout = self.idle_s
                    if not self._cond.wait(timeout) and timeout is not None and not self._queue:
                        break  # idle for idle_s
                if self._stop:
                    return
                entry = self._queue.popleft() if self._queue else None
                batch = self._take_batch(entry) if self.handle_batch is not None and isinstance(entry, _Job) else []
                self.stats.queue(self._waiting(), self.queue_depth)
                self._cond.notify_all()  # room for a waiting submit
            if entry is None:
                self._idle_armed = False
                if self.on_idle is not None:
                    self._guarded(self.on_idle)
            elif isinstance(entry, _Call):
                self._guarded(entry.fn)
            elif self.handle_batch is not None:
                items = [job.item for job in batch if self._fresh(job)]
                if items:
                    self._run_job(lambda: self.handle_batch(items))
            elif self._fresh(entry):
                self._run_job(lambda item=entry.item: self.handle(item))

    def _run_job(self, fn: Callable[[], None]) -> None:
        self._idle_armed = True
        if self._guarded(fn):
            self._consecutive_errors = 0  # only a good frame ends a streak of failures

    def _guarded(self, fn: Callable[[], None]) -> bool:
        """Run ``fn``; count and log a failure instead of raising. Returns whether it succeeded."""
        try:
            fn()
            return True
        except DroppedFrame as e:
            self.on_drop(e.reason, str(e))
            return False
        except Exception as e:  # noqa: BLE001 - one bad frame must not stop the worker; counted and logged
            self._consecutive_errors += 1
            self.last_error = f"{type(e).__name__}: {e}"
            self.stats.drop(self.error_reason)
            if self._consecutive_errors == 1 or self._consecutive_errors % 100 == 0:  # not once per frame
                _logger.error("%s: a job failed (%d in a row): %s", self.name, self._consecutive_errors,
                              self.last_error, exc_info=self._consecutive_errors == 1)
            if self.on_error is not None:
                try:
                    self.on_error()
                except Exception:  # noqa: BLE001
                    _logger.exception("%s: recovering from the failure failed", self.name)
            return False
