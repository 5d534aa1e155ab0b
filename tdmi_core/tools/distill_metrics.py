"""Held-out metrics of the distilled student vs its single-frame baseline: PCK vs the teacher, and jitter.

``python -m tdmi_core.tools.distill_metrics -c config/train/distill_lite.yaml`` runs each model as the
runtime does (:class:`tdmi_core.runtime.StreamingPoseEstimator`, torch backend, fp32 CPU) on the
held-out videos, with the teacher's tracks and boxes as the person input, and writes
``docs/distill-metrics.json`` plus a markdown table into the model card (between
``<!-- distill-metrics:start -->`` and ``<!-- distill-metrics:end -->``).

Metrics (pure functions below, tested on hand-made arrays):

* **PCK@0.2 vs the teacher**: a teacher-visible joint is correct when the model's joint lies within
  0.2 x the longer side of the teacher's person box (:func:`tdmi_core.eval.pck.box_normalised_pck_counts`).
  A person the model returns no pose for counts all its joints as wrong.
* **Temporal jitter**: mean over tracks, joints and frames t of ``||x_{t+1} - 2 x_t + x_{t-1}||``
  divided by the longer side of the teacher box at t, over triples of consecutive frames where the
  track exists and the teacher saw the joint in all three (the same triples for every model and the
  teacher itself, so the numbers compare).

The runner imports the runtime and the models lazily (this package's pure metrics do not need them).
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tdmi_core.eval.pck import PCKCounts, box_normalised_pck_counts

logger = logging.getLogger(__name__)

CARD_START = "<!-- distill-metrics:start -->"
CARD_END = "<!-- distill-metrics:end -->"


def box_size(boxes_xyxy: np.ndarray) -> np.ndarray:
    """Longer side of each box: ``[..., 4] -> [...]``."""
    b = np.asarray(boxes_xyxy, np.float64)
    return np.maximum(b[..., 2] - b[..., 0], b[..., 3] - b[..., 1])


def acceleration_norms(frames: np.ndarray, xy: np.ndarray, valid: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Box-normalised keypoint accelerations of ONE track.

    Args:
        frames: ``[N]`` frame indices where the track exists (any order, no duplicates).
        xy: ``[N, K, 2]`` keypoints in pixels; valid: ``[N, K]`` bool, joints to use.
        size: ``[N]`` normaliser per frame (box size in pixels, > 0).

    Returns:
        ``[M]`` values ``||x_{t+1} - 2 x_t + x_{t-1}|| / size_t`` for every frame t whose neighbours
        t-1 and t+1 both exist, and every joint valid in all three frames.
    """
    frames = np.asarray(frames, np.int64)
    xy = np.asarray(xy, np.float64)
    valid = np.asarray(valid, bool)
    size = np.asarray(size, np.float64)
    n = xy.shape[0] if xy.ndim == 3 else -1
    if xy.ndim != 3 or xy.shape[-1] != 2 or valid.shape != xy.shape[:2] or frames.shape != (n,) or size.shape != (n,):
        raise ValueError(f"need frames [N], xy [N, K, 2], valid [N, K], size [N]; got {frames.shape}, {xy.shape}, "
                         f"{valid.shape}, {size.shape}")
    if len(np.unique(frames)) != len(frames):
        raise ValueError("frames must not repeat within one track")
    order = np.argsort(frames)
    frames, xy, valid, size = frames[order], xy[order], valid[order], size[order]
    if len(frames) < 3:
        return np.zeros(0)
    # centre t = 1..N-2 with frames[t-1] = f-1 and frames[t+1] = f+1
    mid = np.flatnonzero((frames[1:-1] - frames[:-2] == 1) & (frames[2:] - frames[1:-1] == 1)) + 1
    acc = xy[mid + 1] - 2 * xy[mid] + xy[mid - 1]  # [M', K, 2]
    ok = valid[mid - 1] & valid[mid] & valid[mid + 1] & (size[mid] > 0)[:, None]
    norms = np.linalg.norm(acc, axis=-1) / np.where(size[mid] > 0, size[mid], 1.0)[:, None]
    return norms[ok]


def paired_difference(sums_a: np.ndarray, sums_b: np.ndarray, counts: np.ndarray, num_boot: int = 2000,
                      seed: int = 0) -> dict[str, float]:
    """Pooled mean difference (a - b) of per-track sums over the same samples, with a track bootstrap 95 % CI.

    Args:
        sums_a, sums_b: ``[T]`` per-track sums of a per-sample quantity (e.g. jitter) for models a and b,
            over the same samples; counts: ``[T]`` samples per track (> 0).
        num_boot: bootstrap resamples of whole tracks (samples within a track are correlated).

    Returns:
        ``{"diff", "ci95_low", "ci95_high", "tracks", "samples", "tracks_a_lower"}``.
    """
    sums_a, sums_b, counts = (np.asarray(v, np.float64) for v in (sums_a, sums_b, counts))
    if not (sums_a.shape == sums_b.shape == counts.shape) or sums_a.ndim != 1 or not len(counts) or np.any(counts <= 0):
        raise ValueError("need equal-length 1-D per-track sums and positive counts for at least one track")
    diff = float((sums_a.sum() - sums_b.sum()) / counts.sum())
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(counts), size=(num_boot, len(counts)))
    boot = (sums_a[pick].sum(1) - sums_b[pick].sum(1)) / counts[pick].sum(1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"diff": diff, "ci95_low": float(low), "ci95_high": float(high), "tracks": int(len(counts)),
            "samples": int(counts.sum()), "tracks_a_lower": int(np.sum(sums_a / counts < sums_b / counts))}


def mean_or_nan(values: Sequence[float] | np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    return float(values.mean()) if values.size else float("nan")


# ------------------------------------------------------------------------------------------------
# runner


def predict_video(estimator: Any, video: Any, image_root: str | Path) -> dict[tuple[int, int], np.ndarray]:
    """Run a :class:`StreamingPoseEstimator` over one video with the teacher's tracks as input.

    Returns:
        ``{(frame_index, track_id): keypoints[K, 3]}`` (x_px, y_px, score) in source pixels.
    """
    import cv2

    from tdmi_core.runtime.types import TrackedBox

    estimator.reset()
    out: dict[tuple[int, int], np.ndarray] = {}

    def collect(results: Sequence[Any]) -> None:
        for frame_poses in results:
            for pose in frame_poses.poses:
                out[(int(frame_poses.token), int(pose.track_id))] = np.asarray(pose.keypoints, np.float64)

    for f, frame in enumerate(video.frames):
        image = cv2.imread(str(Path(image_root) / frame.file_name), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read {Path(image_root) / frame.file_name}")
        tracks = [TrackedBox(p.track_id, p.box_xyxy) for p in frame.persons]
        collect(estimator.push(image, tracks, token=f))
    collect(estimator.flush())
    return out


def teacher_tracks(video: Any) -> dict[int, list[tuple[int, Any]]]:
    """``{track_id: [(frame_index, PersonAnnotation), ...]}`` of one video."""
    tracks: dict[int, list[tuple[int, Any]]] = defaultdict(list)
    for f, frame in enumerate(video.frames):
        for person in frame.persons:
            tracks[int(person.track_id)].append((f, person))
    return tracks


def score_video(video: Any, predictions: Mapping[str, Mapping[tuple[int, int], np.ndarray]],
                thresholds: Sequence[float] = (0.2, 0.1)) -> dict[str, dict[str, Any]]:
    """PCK vs the teacher and jitter of each model's predictions on one video (+ the teacher's own jitter).

    Returns:
        ``{name: {"pck@0.2": ..., "joints": ..., "missing_persons": ..., "jitter": ..., "jitter_samples": ...,
        "_counts": {thr: PCKCounts}, "_acc": array}}``; private ``_`` entries are for pooling across videos.
    """
    tracks = teacher_tracks(video)
    out: dict[str, dict[str, Any]] = {}
    sources = dict(predictions)
    sources["teacher"] = {(f, int(p.track_id)): p.keypoints for tr in tracks.values() for f, p in tr}
    for name, preds in sources.items():
        gts, pr, vis, boxes, missing = [], [], [], [], 0
        acc: list[np.ndarray] = []
        for track_id, items in tracks.items():
            frames, xy, valid, size = [], [], [], []
            for f, person in items:
                kp = preds.get((f, track_id))
                if kp is None:
                    missing += 1
                    kp = np.full((person.keypoints.shape[0], 3), np.nan)
                gts.append(person.keypoints[:, :2])
                pr.append(kp[:, :2])
                vis.append(person.keypoints[:, 2] > 0)
                boxes.append(person.box_xyxy)
                frames.append(f)
                xy.append(kp[:, :2])
                valid.append((person.keypoints[:, 2] > 0) & np.all(np.isfinite(kp[:, :2]), axis=1))
                size.append(box_size(person.box_xyxy))
            acc.append(acceleration_norms(np.array(frames), np.array(xy), np.array(valid), np.array(size)))
        all_acc = np.concatenate(acc) if acc else np.zeros(0)
        entry: dict[str, Any] = {"_counts": {}, "_acc": all_acc, "_acc_tracks": acc, "missing_persons": missing, "persons": len(gts)}
        for thr in thresholds:
            counts = box_normalised_pck_counts(np.array(pr), np.array(gts), np.array(vis), np.array(boxes), thr)
            entry["_counts"][thr] = counts
            entry[f"pck@{thr}"] = counts.pck
        entry["joints"] = int(entry["_counts"][thresholds[0]].total.sum())
        entry["jitter"] = mean_or_nan(all_acc)
        entry["jitter_samples"] = int(all_acc.size)
        out[name] = entry
    return out


def pool(per_video: Sequence[Mapping[str, Mapping[str, Any]]], thresholds: Sequence[float]) -> dict[str, dict[str, Any]]:
    """Pool per-video results (sums of PCK counts, concatenated accelerations)."""
    out: dict[str, dict[str, Any]] = {}
    for name in per_video[0]:
        entry: dict[str, Any] = {}
        for thr in thresholds:
            counts: PCKCounts = sum((v[name]["_counts"][thr] for v in per_video[1:]), per_video[0][name]["_counts"][thr])
            entry[f"pck@{thr}"] = counts.pck
        entry["joints"] = int(sum(v[name]["joints"] for v in per_video))
        entry["persons"] = int(sum(v[name]["persons"] for v in per_video))
        entry["missing_persons"] = int(sum(v[name]["missing_persons"] for v in per_video))
        acc = np.concatenate([v[name]["_acc"] for v in per_video])
        entry["jitter"] = mean_or_nan(acc)
        entry["jitter_samples"] = int(acc.size)
        out[name] = entry
    return out


def jitter_comparison(per_video: Sequence[Mapping[str, Mapping[str, Any]]], a: str, b: str,
                      num_boot: int = 2000) -> dict[str, float]:
    """Student-minus-baseline jitter over tracks where both have the same samples (:func:`paired_difference`)."""
    sums_a, sums_b, counts = [], [], []
    for video in per_video:
        for acc_a, acc_b in zip(video[a]["_acc_tracks"], video[b]["_acc_tracks"]):
            if len(acc_a) and len(acc_a) == len(acc_b):  # same teacher-visible triples, no missing poses
                sums_a.append(acc_a.sum())
                sums_b.append(acc_b.sum())
                counts.append(len(acc_a))
    return paired_difference(np.array(sums_a), np.array(sums_b), np.array(counts), num_boot)


def _public(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in entry.items() if not k.startswith("_")}


def markdown_table(result: Mapping[str, Any]) -> str:
    """The model card's metrics table (overall + per video)."""
    names = {"student": "TDMI student (5 frames)", "single_frame": "single-frame baseline", "teacher": "teacher (MoveNet)"}
    lines = ["| videos | model | PCK@0.2 vs teacher | PCK@0.1 vs teacher | jitter (accel. / box) | joints | jitter samples |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    blocks = [("all held-out", result["overall"])] + list(result["per_video"].items())
    for video, entry in blocks:
        for key, label in names.items():
            e = entry[key]
            pck2 = "—" if key == "teacher" else f"{e['pck@0.2']:.3f}"
            pck1 = "—" if key == "teacher" else f"{e['pck@0.1']:.3f}"
            lines.append(f"| {video} | {label} | {pck2} | {pck1} | {e['jitter']:.4f} | {e['joints']} | {e['jitter_samples']} |")
    diff = result.get("jitter_student_minus_single_frame")
    if diff:
        lines.append("")
        lines.append(f"Jitter, student minus baseline, same triples: {diff['diff']:+.4f} (95 % CI over tracks "
                     f"{diff['ci95_low']:+.4f} to {diff['ci95_high']:+.4f}; {diff['tracks']} tracks, "
                     f"{diff['samples']} samples; student lower on {diff['tracks_a_lower']} of {diff['tracks']} tracks).")
    return "\n".join(lines)


def update_model_card(card: str | Path, table: str) -> bool:
    """Replace the text between the card's metric markers with ``table``; False if the card has no markers."""
    path = Path(card)
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(CARD_START) + ".*?" + re.escape(CARD_END), re.S)
    if not pattern.search(text):
        return False
    path.write_text(pattern.sub(lambda _: f"{CARD_START}\n{table}\n{CARD_END}", text), encoding="utf-8")
    return True


def evaluate(cfg: Any, thresholds: Sequence[float] = (0.2, 0.1)) -> dict[str, Any]:
    """Run student and baseline on the held-out videos of ``cfg`` (a DistillConfig) and score them."""
    import torch

    from tdmi_core.data.posetrack import read_split
    from tdmi_core.models.weights import load_weights
    from tdmi_core.runtime.estimator import StreamingPoseEstimator
    from tdmi_core.runtime.backends.torch_backend import TorchBackend
    from tdmi_core.train.distill import as_single_frame_model

    torch.set_num_threads(cfg.torch_threads)
    videos = read_split(cfg.val_annotations, cfg.image_root)
    models: dict[str, tuple[Any, Any]] = {}
    student, student_cfg = load_weights(cfg.student_weights)
    models["student"] = (student, student_cfg)
    baseline, baseline_cfg = load_weights(cfg.baseline_weights)
    models["single_frame"] = (as_single_frame_model(baseline), baseline_cfg)
    predictions: dict[str, dict[str, Any]] = {v.video_id: {} for v in videos}
    timings: dict[str, float] = {}
    for name, (model, mcfg) in models.items():
        estimator = StreamingPoseEstimator(TorchBackend(model, device="cpu", precision="fp32"), mcfg,
                                           mode=cfg.eval_mode, box_padding=cfg.box_padding)
        start = time.monotonic()
        for video in videos:
            predictions[video.video_id][name] = predict_video(estimator, video, cfg.image_root)
        timings[name] = round(time.monotonic() - start, 1)
        logger.info("%s: predicted %d held-out videos in %.1f s", name, len(videos), timings[name])
    per_video = {v.video_id: score_video(v, predictions[v.video_id], thresholds) for v in videos}
    overall = pool(list(per_video.values()), thresholds)
    return {
        "what": "held-out teacher-labelled videos; PCK vs the teacher's visible joints (box-normalised, longer box "
                "side); jitter = mean ||x[t+1] - 2x[t] + x[t-1]|| / box size over consecutive-frame triples of "
                "teacher-visible joints",
        "videos": [v.video_id for v in videos],
        "runtime": {"estimator": "StreamingPoseEstimator", "mode": cfg.eval_mode, "backend": "torch fp32 cpu",
                    "person_input": "teacher tracks and boxes", "box_padding": cfg.box_padding},
        "weights": {"student": cfg.student_weights, "single_frame": cfg.baseline_weights},
        "model_config": student_cfg.to_dict(),
        "overall": {k: _public(v) for k, v in overall.items()},
        "jitter_student_minus_single_frame": {k: round(v, 6) if isinstance(v, float) else v for k, v in
                                              jitter_comparison(list(per_video.values()), "student",
                                                                "single_frame").items()},
        "per_video": {vid: {k: _public(v) for k, v in res.items()} for vid, res in per_video.items()},
        "predict_time_s": timings,
    }


def main(argv: Sequence[str] | None = None) -> int:
    from tdmi_core.train.distill import load_distill_config, parse_overrides

    parser = argparse.ArgumentParser(prog="python -m tdmi_core.tools.distill_metrics",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                     description="Held-out PCK vs teacher and jitter of the distilled student and baseline.")
    parser.add_argument("-c", "--config", default="config/train/distill_lite.yaml", help="DistillConfig YAML")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config fields")
    parser.add_argument("--no-card", action="store_true", help="do not update the model card's table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)
    cfg = load_distill_config(args.config, **parse_overrides(args.set))
    result = evaluate(cfg)
    out = Path(cfg.metrics_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    table = markdown_table(result)
    sys.stdout.write(table + "\n")
    if not args.no_card and not update_model_card(cfg.model_card, table):
        logger.warning("model card %s has no %s ... %s markers; table not written there", cfg.model_card,
                       CARD_START, CARD_END)
    logger.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
