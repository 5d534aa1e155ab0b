"""PoseTrack multi-person pose estimation mAP, matching the official kits number for number.

Usage::

    python -m tdmi_core.eval.posetrack --gt GT_DIR --pred PRED_DIR [--kit posetrack18|posetrack21] [--json]

GT_DIR and PRED_DIR hold one json file per sequence, paired by file name. ``--kit posetrack18``
(default) is poseval (PoseTrack17 annolist files and PoseTrack18-style files); ``--kit posetrack21``
is the PoseTrack21 kit (PoseTrack18-style files). The rules are in docs/evaluation.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tdmi_core.eval.ap import KITS, group_mean, joint_ap, mean_ignoring_nan
from tdmi_core.eval.formats import (
    AnnoFrame,
    PoseTrackFormatError,
    detect_format,
    load_json,
    posetrack18_to_annolist,
    read_annolist,
    read_posetrack21,
)
from tdmi_core.eval.kits import PT21_ORDER_FROM_EVAL, posetrack21_frames, poseval_frames
from tdmi_core.eval.matching import PCKH_THRESHOLD, EvalFrame, accumulate
from tdmi_core.skeleton import POSETRACK_EVAL_GROUPS, POSETRACK_EVAL_JOINTS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoseTrackAP:
    """Result of one evaluation.

    Attributes:
        kit: ``"posetrack18"`` or ``"posetrack21"``.
        per_joint: AP in percent per joint, poseval joint order (NaN: left out of the total).
        groups: poseval's columns Head, Shou, Elb, Wri, Hip, Knee, Ankl (means over their joints).
        total: the official total mAP (poseval's "Total").
        num_sequences: sequence files evaluated.
        num_frames: frames evaluated.
        num_gt_joints: annotated GT joints per joint.
    """

    kit: str
    per_joint: dict[str, float]
    groups: dict[str, float]
    total: float
    num_sequences: int
    num_frames: int
    num_gt_joints: dict[str, int]


def _sequence_files(gt_dir: Path, pred_dir: Path) -> list[tuple[Path, Path]]:
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"GT directory {gt_dir} does not exist")
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"prediction directory {pred_dir} does not exist")
    gt_files = sorted(gt_dir.glob("*.json"))
    if not gt_files:
        raise FileNotFoundError(f"no *.json sequence files in {gt_dir}")
    missing = [f.name for f in gt_files if not (pred_dir / f.name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} GT sequences have no prediction file of the same name in {pred_dir}: {missing[:5]}"
            + (" ..." if len(missing) > 5 else "")
        )
    return [(f, pred_dir / f.name) for f in gt_files]


def _frames_of_pair(gt_path: Path, pred_path: Path, kit: str) -> list[EvalFrame]:
    gt_data, pred_data = load_json(gt_path), load_json(pred_path)
    gt_src, pred_src = str(gt_path), str(pred_path)
    if kit == "posetrack21":
        for data, src in ((gt_data, gt_src), (pred_data, pred_src)):
            if detect_format(data, src) != "posetrack18":
                raise PoseTrackFormatError(
                    f"{src}: the PoseTrack21 kit reads only PoseTrack18-style json (images/annotations); "
                    "use --kit posetrack18 for PoseTrack17 annolist files"
                )
        return posetrack21_frames(
            read_posetrack21(gt_data, gt_src, is_gt=True), read_posetrack21(pred_data, pred_src, is_gt=False),
            gt_src, pred_src,
        )

    def read(data: object, src: str) -> list[AnnoFrame]:
        if detect_format(data, src) == "annolist":
            return read_annolist(data, src)
        return posetrack18_to_annolist(data, src)

    return poseval_frames(read(gt_data, gt_src), read(pred_data, pred_src), gt_src, pred_src)


def evaluate_frames(frames: list[EvalFrame], kit: str = "posetrack18", num_sequences: int = 0) -> PoseTrackAP:
    """Per-joint AP, group means and total over prepared frames (all sequences, in order).

    Args:
        frames: evaluated frames, sequence by sequence.
        kit: ``"posetrack18"`` or ``"posetrack21"``.
        num_sequences: reported only.

    Returns:
        The result.
    """
    if kit not in KITS:
        raise ValueError(f"unknown kit {kit!r}; use one of {KITS}")
    scores, labels, n_gt = accumulate(frames, PCKH_THRESHOLD)
    ap = [joint_ap(scores[j], labels[j], n_gt[j], kit) for j in range(len(POSETRACK_EVAL_JOINTS))]
    # the total is a mean over the kit's own joint order (summation order, hence last-bit equality)
    order = range(len(ap)) if kit == "posetrack18" else PT21_ORDER_FROM_EVAL
    total = mean_ignoring_nan([ap[j] for j in order])
    index = {name: j for j, name in enumerate(POSETRACK_EVAL_JOINTS)}
    groups = {name: group_mean([ap[index[joint]] for joint in joints]) for name, joints in POSETRACK_EVAL_GROUPS}
    return PoseTrackAP(
        kit=kit,
        per_joint={name: ap[j] for j, name in enumerate(POSETRACK_EVAL_JOINTS)},
        groups=groups,
        total=total,
        num_sequences=num_sequences,
        num_frames=len(frames),
        num_gt_joints={name: int(n_gt[j]) for j, name in enumerate(POSETRACK_EVAL_JOINTS)},
    )


def evaluate_dirs(gt_dir: str | Path, pred_dir: str | Path, kit: str = "posetrack18") -> PoseTrackAP:
    """Evaluate every sequence of ``gt_dir`` against the same-named file in ``pred_dir``.

    Sequences are taken in sorted file-name order (poseval uses the file system's order; only the
    ranking of exactly equal scores can depend on it).
    """
    if kit not in KITS:
        raise ValueError(f"unknown kit {kit!r}; use one of {KITS}")
    pairs = _sequence_files(Path(gt_dir), Path(pred_dir))
    frames: list[EvalFrame] = []
    for gt_path, pred_path in pairs:
        frames.extend(_frames_of_pair(gt_path, pred_path, kit))
    logger.info("evaluated %d frames of %d sequences (%s kit)", len(frames), len(pairs), kit)
    return evaluate_frames(frames, kit, num_sequences=len(pairs))


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else value


def result_to_json(result: PoseTrackAP) -> dict[str, object]:
    """JSON-ready dict: ``mAP``, ``per_joint`` (name -> AP), ``groups``, counts; NaN written as null."""
    return {
        "kit": result.kit,
        "mAP": _json_number(result.total),
        "per_joint": {k: _json_number(v) for k, v in result.per_joint.items()},
        "groups": {**{k: _json_number(v) for k, v in result.groups.items()}, "Total": _json_number(result.total)},
        "num_sequences": result.num_sequences,
        "num_frames": result.num_frames,
        "num_gt_joints": result.num_gt_joints,
    }


def _cell(value: float) -> str:
    return "  nan" if math.isnan(value) else f"{value:5.1f}"


def format_table(result: PoseTrackAP) -> str:
    """Readable tables: poseval's grouped row (Head ... Total) and the 15 per-joint APs."""
    names = [name for name, _ in POSETRACK_EVAL_GROUPS] + ["Total"]
    values = [result.groups[name] for name, _ in POSETRACK_EVAL_GROUPS] + [result.total]
    lines = [
        f"PoseTrack AP ({result.kit} kit): {result.num_sequences} sequences, {result.num_frames} frames",
        " ".join(f"{n:>5}" for n in names),
        " ".join(_cell(v) for v in values),
        "",
        f"{'joint':<15} {'AP':>5} {'#GT':>6}",
    ]
    lines += [
        f"{name:<15} {_cell(ap)} {result.num_gt_joints[name]:>6}" for name, ap in result.per_joint.items()
    ]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tdmi_core.eval.posetrack",
        description="PoseTrack multi-person pose estimation mAP (a reimplementation of the official kits).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--gt", required=True, type=Path, help="directory of GT json files, one per sequence")
    parser.add_argument("--pred", required=True, type=Path, help="directory of prediction json files, same names")
    parser.add_argument("--kit", choices=KITS, default="posetrack18", help="which official kit to reproduce")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        result = evaluate_dirs(args.gt, args.pred, args.kit)
    except (PoseTrackFormatError, FileNotFoundError) as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    if args.json:
        sys.stdout.write(json.dumps(result_to_json(result), allow_nan=False) + "\n")
    else:
        sys.stdout.write(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
