"""Pipeline statistics: rates, drops by reason, queue depth and latency percentiles (pure, thread-safe).

Producers (subscription callbacks, a video reader) and the worker thread record into one
:class:`PipelineStats`; :meth:`PipelineStats.snapshot` gives one consistent read, which the pose node
publishes as ``/diagnostics``.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

__all__ = ["PipelineStats", "RateMeter", "StatsSnapshot"]


class RateMeter:
    """Events per second over the last ``window_s`` seconds (monotonic clock)."""

    def __init__(self, window_s: float = 5.0, max_events: int = 10_000) -> None:
        self.window_s = float(window_s)
        self._times: deque[float] = deque(maxlen=max_events)

    def tick(self, now_s: float) -> None:
        """Count one event at ``now_s`` (monotonic seconds)."""
        self._times.append(now_s)

    def rate_hz(self, now_s: float) -> float:
        """Events per second over the window ending at ``now_s``."""
        while self._times and now_s - self._times[0] > self.window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = max(now_s - self._times[0], 1e-9)
        return (len(self._times) - 1) / span if span < self.window_s else len(self._times) / self.window_s


@dataclass(frozen=True)
class StatsSnapshot:
    """One consistent read of :class:`PipelineStats`."""

    rates_hz: dict[str, float]
    counts: dict[str, int]
    drops: dict[str, int]
    queue_depth: int
    queue_capacity: int
    latency_ms: dict[str, dict[str, float]]  # name -> {"p50", "p90", "p99", "max"}
    seconds_since: dict[str, float]  # input name -> seconds since its last message (inf if never)
    recent_skips: int  # windows skipped (compute behind) since the previous snapshot


class PipelineStats:
    """Counters for one node; every method may be called from any thread."""

    def __init__(self, latency_window: int = 500, rate_window_s: float = 5.0) -> None:
        self._lock = threading.Lock()
        self._rates: dict[str, RateMeter] = {}
        self._last_seen: dict[str, float] = {}
        self._counts: Counter[str] = Counter()
        self._drops: Counter[str] = Counter()
        self._latency: dict[str, deque[float]] = {}
        self._latency_window = latency_window
        self._rate_window_s = rate_window_s
        self._queue_depth = 0
        self._queue_capacity = 0
        self._skips_at_last_snapshot = 0

    def tick(self, name: str, now_s: float | None = None) -> None:
        """Count one event of ``name`` (e.g. "image", "detections", "poses") for rate and total."""
        now_s = time.monotonic() if now_s is None else now_s
        with self._lock:
            self._rates.setdefault(name, RateMeter(self._rate_window_s)).tick(now_s)
            self._last_seen[name] = now_s
            self._counts[name] += 1

    def drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` dropped items for ``reason``."""
        if n:
            with self._lock:
                self._drops[reason] += n

    def set_drops(self, prefix: str, counts: Counter[str] | dict[str, int]) -> None:
        """Mirror counters kept elsewhere (e.g. the stamp pairer's) under ``prefix``."""
        with self._lock:
            for reason, n in counts.items():
                self._drops[f"{prefix}{reason}"] = int(n)

    def latency(self, name: str, seconds: float) -> None:
        """Record one latency sample (seconds) for ``name``."""
        with self._lock:
            self._latency.setdefault(name, deque(maxlen=self._latency_window)).append(seconds)

    def queue(self, depth: int, capacity: int) -> None:
        """Record the queue's current depth and capacity."""
        with self._lock:
            self._queue_depth, self._queue_capacity = int(depth), int(capacity)

    def drops(self) -> dict[str, int]:
        """Dropped items by reason, so far."""
        with self._lock:
            return dict(self._drops)

    def counts(self) -> dict[str, int]:
        """Events by name, so far."""
        with self._lock:
            return dict(self._counts)

    def snapshot(self, now_s: float | None = None, skip_reason: str = "compute_behind") -> StatsSnapshot:
        """One consistent read of everything; ``recent_skips`` counts ``skip_reason`` drops since the last call."""
        now_s = time.monotonic() if now_s is None else now_s
        with self._lock:
            latency = {}
            for name, samples in self._latency.items():
                if samples:
                    arr = np.asarray(samples) * 1000.0
                    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
                    latency[name] = {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(arr.max())}
            skips = self._drops.get(skip_reason, 0)
            recent = skips - self._skips_at_last_snapshot
            self._skips_at_last_snapshot = skips
            return StatsSnapshot(
                rates_hz={k: m.rate_hz(now_s) for k, m in self._rates.items()},
                counts=dict(self._counts),
                drops=dict(self._drops),
                queue_depth=self._queue_depth,
                queue_capacity=self._queue_capacity,
                latency_ms=latency,
                seconds_since={k: now_s - t for k, t in self._last_seen.items()},
                recent_skips=recent,
            )
