"""Exact vs streaming mode on a real video: keypoint differences, box hold statistics and speed.

Runs one detector + :class:`~tdmi_core.tracking.IouTracker` over a video and feeds the *same* tracks
to two estimators sharing one backend: ``exact`` (paper crops) and ``streaming`` (held crop boxes,
feature reuse). Reports, over all (frame, person) pairs, the distance between the two modes'
keypoints in image pixels and normalised by the person box height, the fraction of windows whose
held box differs from the key frame's own box, how often held boxes are replaced, and the backbone
crops per frame of each mode.

    python -m tdmi_core.tools.compare_modes --video VIDEO --config config/pose.yaml [--frames 200] [--hold-thresholds 0.05 0.1]
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from tdmi_core.detection import make_detector
from tdmi_core.runtime.backends import build_backend
from tdmi_core.runtime.config import load_runtime_config
from tdmi_core.runtime.estimator import StreamingPoseEstimator
from tdmi_core.runtime.loading import load_model
from tdmi_core.runtime.types import FramePoses, TrackedBox
from tdmi_core.tools.frames import read_frames
from tdmi_core.tracking import IouTracker

_logger = logging.getLogger(__name__)

__all__ = ["compare_modes", "main"]


def compare_modes(
    frames: list[np.ndarray],
    tracks_per_frame: list[list[TrackedBox]],
    backend: Any,
    model_cfg: Any,
    hold_threshold: float = 0.1,
    min_keypoint_score: float = 0.0,
) -> dict[str, Any]:
    """Run both modes over given frames and tracks; return the difference statistics.

    Args:
        frames: BGR images.
        tracks_per_frame: the tracked boxes of each frame.
        backend, model_cfg: shared by both estimators.
        hold_threshold: streaming mode's threshold.
        min_keypoint_score: only keypoints whose exact-mode score is at least this count.
    """
    modes = {
        "exact": StreamingPoseEstimator(backend, model_cfg, mode="exact"),
        "streaming": StreamingPoseEstimator(backend, model_cfg, mode="streaming", hold_threshold=hold_threshold),
    }
    out: dict[str, list[FramePoses]] = {m: [] for m in modes}
    seconds = {m: 0.0 for m in modes}
    crops = {m: 0 for m in modes}
    updates = {m: 0 for m in modes}
    for i, (image, tracks) in enumerate(zip(frames, tracks_per_frame)):
        for m, est in modes.items():
            start = time.perf_counter()
            out[m] += est.push(image, tracks, token=i)
            seconds[m] += time.perf_counter() - start
    for m, est in modes.items():
        start = time.perf_counter()
        out[m] += est.flush()
        seconds[m] += time.perf_counter() - start
        crops[m] = est.stats.backbone_crops
        updates[m] = est.stats.box_updates
    dist_px, dist_rel, per_joint = [], [], []
    n_persons = 0
    for a, b in zip(out["exact"], out["streaming"]):
        assert a.token == b.token
        for pa, pb in zip(a.poses, b.poses):
            assert pa.track_id == pb.track_id
            n_persons += 1
            keep = pa.keypoints[:, 2] >= min_keypoint_score
            d = np.linalg.norm(pa.keypoints[:, :2] - pb.keypoints[:, :2], axis=1)
            height = max(pa.box_xyxy[3] - pa.box_xyxy[1], 1.0)
            dist_px.extend(d[keep].tolist())
            dist_rel.extend((d[keep] / height).tolist())
            per_joint.append(np.where(keep, d, np.nan))
    px = np.array(dist_px)
    rel = np.array(dist_rel)
    n_frames = len(frames)

    def stats(v: np.ndarray) -> dict[str, float]:
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

    return {
        "frames": n_frames,
        "person_frames": n_persons,
        "keypoints_compared": int(px.size),
        "hold_threshold": hold_threshold,
        "distance_px": stats(px),
        "distance_over_box_height": stats(rel),
        "fraction_within_2px": float(np.mean(px <= 2.0)) if px.size else None,
        "per_joint_mean_px": np.nanmean(np.stack(per_joint), axis=0).round(3).tolist() if per_joint else [],
        "box_updates_per_person_frame": {m: updates[m] / max(n_persons, 1) for m in modes},
        "backbone_crops_per_frame": {m: crops[m] / max(n_frames, 1) for m in modes},
        "seconds_per_frame": {m: seconds[m] / max(n_frames, 1) for m in modes},
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m tdmi_core.tools.compare_modes``."""
    p = argparse.ArgumentParser(
        description="Keypoint difference between exact and streaming mode on a video.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--video", type=Path, required=True)
    p.add_argument("--config", default=None,
                   help="runtime settings: a YAML with a runtime section (e.g. config/pose.yaml); flags below override it")
    p.add_argument("--weights", default=None, help="TDMI weights file (default: the config's)")
    p.add_argument("--model", default=None, help="model config (used without weights)")
    p.add_argument("--backend", default=None, choices=("torch", "onnxruntime"))
    p.add_argument("--detector", default="movenet", choices=("movenet", "hog"))
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--start", type=int, default=0, help="first frame index")
    p.add_argument("--movenet-long-side", type=int, default=256, help="MoveNet input long side (px)")
    p.add_argument("--movenet-score", type=float, default=0.25, help="MoveNet instance score threshold")
    p.add_argument("--movenet-tiles", type=int, default=1, help="MoveNet side-by-side tiles")
    p.add_argument("--hold-thresholds", type=float, nargs="+", default=[0.1], help="streaming thresholds to compare")
    p.add_argument("--min-score", type=float, default=0.0, help="count keypoints with exact-mode score >= this")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the config's)")
    p.add_argument("--out", type=Path, default=Path("compare-modes.json"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    overrides = {"weights": args.weights, "model": args.model, "backend": args.backend, "num_threads": args.threads}
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
    for image in frames:
        det = detector.detect(image)
        ids = tracker.update(det.boxes_xyxy, det.scores)
        tracks_per_frame.append([TrackedBox(int(t), b, float(s)) for t, b, s in zip(ids, det.boxes_xyxy, det.scores)])
    report = {
        "video": args.video.name, "weights": Path(rcfg.weights).name if rcfg.weights else None,
        "model": model_cfg.name, "detector": args.detector, "backend": backend.name,
        "start_frame": args.start, "movenet": [args.movenet_long_side, args.movenet_score, args.movenet_tiles],
        "runs": [
            compare_modes(frames, tracks_per_frame, backend, model_cfg, t, args.min_score) for t in args.hold_thresholds
        ],
    }
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))  # CLI output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
