"""The pipeline's statistics (``tdmi_core.runtime.stats``) as ``diagnostic_msgs/DiagnosticArray``.

:func:`assess` turns a snapshot into a level and a message; :func:`stats_to_diagnostics` builds the message.
"""
from __future__ import annotations

from typing import Any

from tdmi_core.runtime.stats import StatsSnapshot

OK, WARN, ERROR = 0, 1, 2  # DiagnosticStatus levels (bytes in the message)


def assess(snapshot: StatsSnapshot, expected_inputs: tuple[str, ...], silence_warn_s: float) -> tuple[int, str]:
    """Level and message: WARN if an expected input is silent or frames were skipped, else OK."""
    silent = [
        name for name in expected_inputs if snapshot.seconds_since.get(name, float("inf")) > silence_warn_s
    ]
    if silent:
        never = [n for n in silent if n not in snapshot.seconds_since]
        what = ", ".join(f"{n} (never)" if n in never else f"{n} ({snapshot.seconds_since[n]:.1f} s)" for n in silent)
        return WARN, f"no input for more than {silence_warn_s:.1f} s: {what}"
    if snapshot.recent_skips:
        return WARN, f"compute behind: skipped {snapshot.recent_skips} frame(s) since the last report"
    return OK, "running"


def stats_to_diagnostics(
    snapshot: StatsSnapshot, name: str, hardware_id: str, level: int, message: str, header_stamp: Any
) -> Any:
    """Build a ``DiagnosticArray`` with one status holding every number of ``snapshot``.

    Keys: ``rate_hz/<input>``, ``count/<input>``, ``drop/<reason>``, ``queue_depth``,
    ``queue_capacity``, ``latency_ms/<stage>/<p50|p90|p99|max>``, ``seconds_since/<input>``.
    """
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    values: list[tuple[str, str]] = []
    values += [(f"rate_hz/{k}", f"{v:.2f}") for k, v in sorted(snapshot.rates_hz.items())]
    values += [(f"count/{k}", str(v)) for k, v in sorted(snapshot.counts.items())]
    values += [(f"drop/{k}", str(v)) for k, v in sorted(snapshot.drops.items())]
    values += [("queue_depth", str(snapshot.queue_depth)), ("queue_capacity", str(snapshot.queue_capacity))]
    for stage, pcts in sorted(snapshot.latency_ms.items()):
        values += [(f"latency_ms/{stage}/{p}", f"{v:.2f}") for p, v in pcts.items()]
    values += [(f"seconds_since/{k}", f"{v:.2f}") for k, v in sorted(snapshot.seconds_since.items())]
    status = DiagnosticStatus(level=bytes([level]), name=name, message=message, hardware_id=hardware_id)
    status.values = [KeyValue(key=k, value=v) for k, v in values]
    array = DiagnosticArray()
    array.header.stamp = header_stamp
    array.status = [status]
    return array


def diagnostics_to_dict(msg: Any) -> dict[str, str]:
    """First status of a ``DiagnosticArray`` -> {key: value} plus ``level`` and ``message`` (for tests/tools)."""
    status = msg.status[0]
    out = {kv.key: kv.value for kv in status.values}
    level = status.level
    out["level"] = str(level[0] if isinstance(level, (bytes, bytearray)) else int(level))
    out["message"] = status.message
    return out
