"""tdmi_ros.safety: throttled logging that cannot collide inside rclpy, and the callback guard."""
from __future__ import annotations

import pytest

from tdmi_ros.safety import CallbackGuard, NodeLog


class FakeLogger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.lines.append(("info", message))

    def warning(self, message: str) -> None:
        self.lines.append(("warning", message))

    def error(self, message: str) -> None:
        self.lines.append(("error", message))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_throttled_per_key_and_says_what_was_left_out():
    logger, clock = FakeLogger(), FakeClock()
    log = NodeLog(logger, period_s=5.0, clock=clock)
    assert log.warning("a", "first a")
    assert not log.warning("a", "again a")
    assert log.warning("b", "first b")  # another key is not throttled by "a"
    clock.now += 5.0
    assert log.warning("a", "later a")
    assert log.error("a", "an error, now", period_s=0.0)
    assert logger.lines == [("warning", "first a"), ("warning", "first b"),
                            ("warning", "later a [1 more like this in the last 5 s]"), ("error", "an error, now")]


def test_mixed_severities_and_periods_never_collide_in_rclpy():
    """The crash: one rclpy call site used with two throttle settings raised ValueError."""
    import rclpy
    from rclpy.logging import get_logger

    logger = get_logger("tdmi_safety_test")
    with pytest.raises(ValueError, match="filters cannot be changed"):  # the rclpy behaviour we work around
        for kwargs in ({}, {"throttle_duration_sec": 5.0}):
            logger.warn("x", **kwargs)
    log = NodeLog(logger)
    for i in range(20):
        log.warning(f"key{i % 3}", "w", period_s=float(i % 2))
        log.error(f"key{i % 4}", "e", period_s=0.0)
        log.info("k", "i")
    assert rclpy  # (rclpy logging works without an initialised context)


def test_guard_counts_logs_the_first_traceback_and_never_raises():
    logger = FakeLogger()
    errors: list[str] = []
    guard = CallbackGuard(NodeLog(logger, clock=FakeClock()), on_error=errors.append)
    calls: list[int] = []

    def callback(x: int) -> None:
        calls.append(x)
        if x < 0:
            raise KeyError(x)

    wrapped = guard.wrap("image", callback)
    for x in (1, -1, -2, 3):
        assert wrapped(x) is None
    assert calls == [1, -1, -2, 3]
    assert errors == ["image", "image"] and guard.total == 2 and guard.errors == {"image": 2}
    assert len(logger.lines) == 2  # the traceback once, then one throttled line
    assert "Traceback" in logger.lines[0][1] and "KeyError: -1" in logger.lines[0][1]
    assert "Traceback" not in logger.lines[1][1] and "callback_error_image" in logger.lines[1][1]
