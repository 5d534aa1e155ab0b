"""The runtime's modes against the paper-faithful ``exact`` mode on a real video, in one run.

Runs one detector + :class:`~tdmi_core.tracking.IouTracker` over a video and feeds the *same* tracks
to estimators sharing one backend: ``exact`` (paper crops, the reference), ``aligned`` (each
person-frame through the backbone once, windows resampled into their key box) and ``streaming``
(held crop boxes) at each given hold threshold; their pushes alternate frame by frame so all see the
same machine load. Reports per mode, over all (frame, person) pairs, the distance to exact mode's
keypoints in image pixels and normalised by the person box height, backbone-pass equivalents per
person-frame (model-input-sized crops through the backbone), held-box replacements and time per frame.

    python -m tdmi_core.tools.compare_modes --video VIDEO --config config/pose.yaml [--frames 200] [--hold-thresholds 0.05 0.1]
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tdmi_core.detection import make_detector
from tdmi_core.runtime.backends import build_backend
from tdmi_core.runtime.config import load_runtime_config
from tdmi_core.runtime.estimator import StreamingPoseEstimator
from tdmi_core.runtime.loading import load_model
from tdmi_core.runtime.types import FramePoses, TrackedBox
from tdmi_core.tools.frames import read_frames
from tdmi_core.tracking import IouTracker

_logger = logging.getLogger(__name__)

__all__ = ["compare_modes", "main", "summary_table"]


def _distance_stats(v: np.ndarray) -> dict[str, float]:
    if v.size == 0:
        return {}
    return {
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "p90": float(np.percentile(v, 90)),
        "p99": float(np.percentile(v, 99)),
        "max": float(v.max()),
        "fraction_zero": float(np.mean(v < 1e-6)),
    }


def _versus_exact(exact: list[FramePoses], other: list[FramePoses], min_keypoint_score: float) -> dict[str, Any]:
    """Keypoint distances of ``other`` to ``exact`` over all (frame, person) pairs."""
    dist_px, dist_rel, per_joint = [], [], []
    for a, b in zip(exact, other, strict=True):
        assert a.token == b.token
        for pa, pb in zip(a.poses, b.poses, strict=True):
            assert pa.track_id == pb.track_id
            keep = pa.keypoints[:, 2] >= min_keypoint_score
            d = np.linalg.norm(pa.keypoints[:, :2] - pb.keypoints[:, :2], axis=1)
            height = max(pa.box_xyxy[3] - pa.box_xyxy[1], 1.0)
            dist_px.extend(d[keep].tolist())
            dist_rel.extend((d[keep] / height).tolist())
            per_joint.append(np.where(keep, d, np.nan))
    px = np.array(dist_px)
    return {
        "keypoints_compared": int(px.size),
        "distance_px": _distance_stats(px),
        "distance_over_box_height": _distance_stats(np.array(dist_rel)),
        "fraction_within_1px": float(np.mean(px <= 1.0)) if px.size else None,
        "fraction_within_2px": float(np.mean(px <= 2.0)) if px.size else None,
        "per_joint_mean_px": np.nanmean(np.stack(per_joint), axis=0).round(3).tolist() if per_joint else [],
    }


def compare_modes(
    frames: list[np.ndarray],
    tracks_per_frame: list[list[TrackedBox]],
    backend: Any,
    model_cfg: Any,
    hold_thresholds: Sequence[float] = (0.1,),
    min_keypoint_score: float = 0.0,
) -> dict[str, Any]:
    """Run exact, aligned and streaming (per hold threshold) over given frames and tracks; compare to exact.

    Args:
        frames: BGR images.
        tracks_per_frame: the tracked boxes of each frame.
        backend, model_cfg: shared by all estimators.
        hold_thresholds: streaming mode's thresholds (one streaming estimator each).
        min_keypoint_score: only keypoints whose exact-mode score is at least this count.

    Returns:
        ``frames``, ``person_frames``, ``keypoints_compared`` and per mode (``exact``, ``aligned``,
        ``streaming@<threshold>``) its distances to exact, costs and time.
    """
    modes: dict[str, StreamingPoseEstimator] = {
        "exact": StreamingPoseEstimator(backend, model_cfg, mode="exact"),
        "aligned": StreamingPoseEstimator(backend, model_cfg, mode="aligned"),
        **{f"streaming@{t:g}": StreamingPoseEstimator(backend, model_cfg, mode="streaming", hold_threshold=t)
           for t in hold_thresholds},
    }
    out: dict[str, list[FramePoses]] = {m: [] for m in modes}
    seconds = {m: 0.0 for m in modes}
    for i, (image, tracks) in enumerate(tqdm(list(zip(frames, tracks_per_frame)), desc="modes", unit="frame", mininterval=5)):
        for m, est in modes.items():
            start = time.perf_counter()
            out[m] += est.push(image, tracks, token=i)
            seconds[m] += time.perf_counter() - start
    for m, est in modes.items():
        start = time.perf_counter()
        out[m] += est.flush()
        seconds[m] += time.perf_counter() - start
    person_frames = sum(len(f.poses) for f in out["exact"])
    n_frames = len(frames)
    rows = {
        m: {
            "hold_threshold": est.hold_threshold,
            **_versus_exact(out["exact"], out[m], min_keypoint_score),
            "backbone_passes_per_person_frame": est.stats.backbone_crops / max(person_frames, 1),
            "backbone_crops_per_frame": est.stats.backbone_crops / max(n_frames, 1),
            "aligned_features_per_person_frame": est.stats.aligned_features / max(person_frames, 1),
            "box_updates_per_person_frame": est.stats.box_updates / max(person_frames, 1),
            "seconds_per_frame": seconds[m] / max(n_frames, 1),
        }
        for m, est in modes.items()
    }
    return {"frames": n_frames, "person_frames": person_frames,
            "keypoints_compared": rows["exact"]["keypoints_compared"], "modes": rows}


def summary_table(report: dict[str, Any]) -> str:
    """The per-mode numbers of a :func:`compare_modes` report as a Markdown table."""
    lines = ["| mode | mean px | median px | p90 px | within 1 px | backbone passes / person-frame | ms / frame |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for m, row in report["modes"].items():
        d = row["distance_px"]
        lines.append(f"| {m} | {d.get('mean', 0):.2f} | {d.get('median', 0):.2f} | {d.get('p90', 0):.2f} | "
                     f"{100 * (row['fraction_within_1px'] or 0):.1f} % | {row['backbone_passes_per_person_frame']:.2f} | "
                     f"{1e3 * row['seconds_per_frame']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m tdmi_core.tools.compare_modes``."""
    p = argparse.ArgumentParser(
        description="Keypoint difference of the aligned and streaming modes to exact mode on a video, and their cost.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--video", type=Path, required=True)
    p.add_argument("--config", default=None,
                   help="runtime settings: a YAML with a runtime section (e.g. config/pose.yaml); flags below override it")
    p.add_argument("--weights", default=None, help="TDMI weights file (default: the config's)")
    p.add_argument("--model", default=None, help="model config (used without weights)")
    p.add_argument("--allow-untrained", action="store_true",
                   help="without weights, run an untrained --model (costs are real, keypoints meaningless)")
    p.add_argument("--backend", default=None, choices=("torch", "onnxruntime"))
    p.add_argument("--detector", default="movenet", choices=("movenet", "hog"))
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--start", type=int, default=0, help="first frame index")
    p.add_argument("--movenet-long-side", type=int, default=256, help="MoveNet input long side (px)")
    p.add_argument("--movenet-score", type=float, default=0.25, help="MoveNet instance score threshold")
    p.add_argument("--movenet-tiles", type=int, default=1, help="MoveNet side-by-side tiles")
    p.add_argument("--hold-thresholds", type=float, nargs="*", default=[0.1], help="streaming thresholds to compare")
    p.add_argument("--min-score", type=float, default=0.0, help="count keypoints with exact-mode score >= this")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the config's)")
    p.add_argument("--out", type=Path, default=Path("compare-modes.json"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    overrides = {"weights": args.weights, "model": args.model, "backend": args.backend, "num_threads": args.threads,
                 "allow_untrained": args.allow_untrained or None}
    rcfg = load_runtime_config(args.config, **{k: v for k, v in overrides.items() if v is not None})
    model, model_cfg, _ = load_model(rcfg)
    backend = build_backend(rcfg, model, model_cfg)
    frames = list(read_frames(args.video, args.start, args.frames))
    if not frames:
        raise ValueError(f"{args.video}: no frames could be read")
    detector = make_detector(args.detector) if args.detector == "hog" else make_detector(
        "movenet", long_side_px=args.movenet_long_side, score_threshold=args.movenet_score, tiles=args.movenet_tiles
    )
    tracker = IouTracker()
    tracks_per_frame = []
    for image in tqdm(frames, desc="detect + track", unit="frame", mininterval=5):
        det = detector.detect(image)
        ids = tracker.update(det.boxes_xyxy, det.scores)
        tracks_per_frame.append([TrackedBox(int(t), b, float(s)) for t, b, s in zip(ids, det.boxes_xyxy, det.scores)])
    report = {
        "video": args.video.name, "weights": Path(rcfg.weights).name if rcfg.weights else None,
        "model": model_cfg.name, "window": model_cfg.window, "detector": args.detector, "backend": backend.name,
        "start_frame": args.start, "movenet": [args.movenet_long_side, args.movenet_score, args.movenet_tiles],
        **compare_modes(frames, tracks_per_frame, backend, model_cfg, args.hold_thresholds, args.min_score),
    }
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(summary_table(report))  # CLI output; all numbers in --out
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
