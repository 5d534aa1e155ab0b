"""Keep one bad message, or one bug, from stopping a node: logging that can repeat without
colliding, and a guard around every subscription and timer callback.

Why not rclpy's ``throttle_duration_sec`` / ``once``: rclpy ties those filters to the calling line
and raises ``ValueError: Requested logging filters cannot be changed between calls`` when one line
is used with other settings; in rclpy 9 the deprecated ``.warn()`` wrapper makes every ``.warn()``
in a process the same line, so two differently throttled warnings killed the pose node. Here rclpy
only sees plain calls, each severity from its own line, and the throttling is ours, per key.
"""
from __future__ import annotations

import functools
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from typing import Any

DEFAULT_PERIOD_S = 5.0


class NodeLog:
    """A node's logger for messages that can repeat: at most one per ``key`` every ``period_s``.

    A message that follows suppressed ones says how many were left out. Thread-safe.

    Args:
        logger: an rclpy logger (``node.get_logger()``) or anything with ``info``/``warning``/``error``.
        period_s: default throttle period per key.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(self, logger: Any, period_s: float = DEFAULT_PERIOD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.period_s = float(period_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def info(self, key: str, message: str, period_s: float | None = None) -> bool:
        """Log at INFO unless ``key`` was logged less than ``period_s`` ago; True if logged."""
        return self._log("info", key, message, period_s)

    def warning(self, key: str, message: str, period_s: float | None = None) -> bool:
        """Log at WARN, throttled per ``key`` (see :meth:`info`)."""
        return self._log("warning", key, message, period_s)

    def error(self, key: str, message: str, period_s: float | None = None) -> bool:
        """Log at ERROR, throttled per ``key`` (see :meth:`info`)."""
        return self._log("error", key, message, period_s)

    def _log(self, severity: str, key: str, message: str, period_s: float | None) -> bool:
        period = self.period_s if period_s is None else period_s
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < period:
                self._suppressed[key] += 1
                return False
            self._last[key] = now
            left_out = self._suppressed.pop(key, 0)
        if left_out:
            message = f"{message} [{left_out} more like this in the last {now - last:.0f} s]"
        # one calling line per severity: rclpy refuses a line whose severity changes
        if severity == "error":
            self.logger.error(message)
        elif severity == "warning":
            self.logger.warning(message)
        else:
            self.logger.info(message)
        return True


class CallbackGuard:
    """Wraps callbacks so that an unexpected exception is counted and logged, never raised.

    The first exception of each type in a callback is logged with its traceback; repeats are
    one throttled line each. ``errors`` counts them by callback name, and ``on_error(name)`` is
    called for each (the node counts it in /diagnostics).
    """

    def __init__(self, log: NodeLog, on_error: Callable[[str], None] | None = None) -> None:
        self.log = log
        self.on_error = on_error
        self.errors: Counter[str] = Counter()
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.errors.values())

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., None]:
        """``fn`` with its exceptions caught; ``name`` names it in counters and logs."""

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> None:
            try:
                fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - the point: nothing a callback raises stops the node
                self._record(name, e)

        return guarded

    def _record(self, name: str, error: Exception) -> None:
        kind = type(error).__name__
        with self._lock:
            self.errors[name] += 1
            first = (name, kind) not in self._seen
            self._seen.add((name, kind))
        if self.on_error is not None:
            self.on_error(name)
        what = f"unexpected {kind} in the {name} callback (counted as callback_error_{name}): {error}"
        if first:
            self.log.error(f"callback:{name}:{kind}:traceback", f"{what}\n{traceback.format_exc()}", period_s=0.0)
        else:
            self.log.error(f"callback:{name}:{kind}", what)
