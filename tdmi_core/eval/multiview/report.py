"""The evaluation as markdown tables and as JSON."""
from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from tdmi_core.eval.multiview.bootstrap import Interval
from tdmi_core.eval.multiview.evaluate import Evaluation, Table, WorstFrame


def _number(value: float, digits: int) -> str:
    return f"{value:.3g}" if abs(value) >= 1e4 else f"{value:.{digits}f}"  # a ratio to a near-zero error


def _iv(interval: Interval, digits: int) -> str:
    if math.isnan(interval.value):
        return "—"
    return f"{_number(interval.value, digits)} [{_number(interval.low, digits)}, {_number(interval.high, digits)}]"


def _table_markdown(table: Table, cameras: list[str]) -> list[str]:
    lines = [
        f"### {table.calibration} calibration",
        "",
        f"Common samples: {table.common_observations} joint-observations of {table.union_observations} counted by "
        f"any method; jitter on {table.common_jitter_triples} common frame triples. Values with 95 % frame-bootstrap "
        "intervals.",
        "",
        "| method | LOVO median px | mean px | median ÷ height | "
        + " | ".join(f"{c} median px" for c in cameras)
        + " | jitter (accel. ÷ height) | observations (coverage) | jitter triples |",
        "|---" * (7 + len(cameras)) + "|",
    ]
    for name, row in table.methods.items():
        cells = [
            name,
            _iv(row.lovo_px_median, 1),
            _iv(row.lovo_px_mean, 1),
            _iv(row.lovo_height_median, 4),
            *(_iv(row.per_camera_px_median[c], 1) for c in cameras),
            _iv(row.jitter, 4),
            f"{row.observations} ({100 * row.coverage:.1f} %)",
            str(row.jitter_triples),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if table.pairs:
        lines += [
            "",
            "| a vs b | LOVO median a − b px | a ÷ b | "
            + " | ".join(f"{c} a ÷ b" for c in cameras)
            + " | jitter a − b | jitter a ÷ b |",
            "|---" * (5 + len(cameras)) + "|",
        ]
        for pair in table.pairs:
            cells = [
                f"{pair.a} vs {pair.b}",
                _iv(pair.lovo_px_median_difference, 1),
                _iv(pair.lovo_px_median_ratio, 3),
                *(_iv(pair.per_camera_px_median_ratio[c], 3) for c in cameras),
                _iv(pair.jitter_difference, 4),
                _iv(pair.jitter_ratio, 3),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    joints = len(next(iter(table.methods.values())).per_joint_px_median)
    lines += ["", "LOVO median px per joint index:", "", "| method | " + " | ".join(map(str, range(joints))) + " |"]
    lines.append("|---" * (joints + 1) + "|")
    for name, row in table.methods.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in row.per_joint_px_median) + " |")
    return lines


def to_markdown(evaluation: Evaluation, worst: dict[str, list[WorstFrame]] | None = None) -> str:
    """Tables per calibration, the refinement report and, if given, each method's worst frames (by mean
    LOVO error over one person's joints in one held-out view, with the last table's calibration)."""
    lines = [
        "## Multi-view accuracy: leave-one-view-out reprojection error and jitter",
        "",
        f"{len(evaluation.methods)} methods, cameras {', '.join(evaluation.cameras)}, {evaluation.frames} frames, "
        f"{evaluation.people} people.",
        "",
    ]
    for table in evaluation.tables:
        lines += _table_markdown(table, evaluation.cameras) + [""]
    report = evaluation.refinement
    if report is not None:
        lines += [
            f"### Calibration refinement (bundle adjustment on {', '.join(report.methods)})",
            "",
            f"{report.points} points, {report.observations} observations, {report.seconds:.1f} s. Median all-camera "
            f"residual of confident joints: {report.residual_before_px:.2f} px read → "
            f"{report.residual_after_px:.2f} px refined.",
            "",
            "| camera | principal point shift px (x, y) | focal shift px | rotation change ° | centre shift m |",
            "|---|---|---|---|---|",
        ]
        for c in evaluation.cameras:
            dx, dy = report.principal_point_shift_px[c]
            fx, fy = report.focal_shift_px[c]
            lines.append(
                f"| {c} | {dx:+.1f}, {dy:+.1f} | {fx:+.1f}, {fy:+.1f} | {report.rotation_change_deg[c]:.2f} | "
                f"{report.centre_shift_m[c]:.3f} |"
            )
        lines.append("")
    for method, frames in (worst or {}).items():
        listed = "; ".join(f"frame {w.frame} {w.camera} person {w.person} (track {w.track_id}): {w.mean_px:.1f} px"
                           for w in frames)
        lines.append(f"Worst frames of {method}: {listed or 'none'}")
    return "\n".join(lines).rstrip() + "\n"


def _without_nan(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_nan(v) for v in value]
    return value


def to_json(evaluation: Evaluation, worst: dict[str, list[WorstFrame]] | None = None) -> dict[str, Any]:
    """The evaluation (without per-sample arrays) as JSON-ready data; NaN becomes null."""
    data = {
        "methods": evaluation.methods,
        "cameras": evaluation.cameras,
        "frames": evaluation.frames,
        "people": evaluation.people,
        "tables": [asdict(table) for table in evaluation.tables],
        "refinement": asdict(evaluation.refinement) if evaluation.refinement else None,
        "worst_frames": {m: [asdict(w) for w in frames] for m, frames in (worst or {}).items()},
    }
    return _without_nan(data)
