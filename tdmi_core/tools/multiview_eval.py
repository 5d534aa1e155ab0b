"""Run every method on calibrated synchronised videos and write their 2D predictions per camera.

The reference-free metric (:mod:`tdmi_core.eval.multiview`) then scores the files against each
other through multi-view geometry. Methods (``--methods``; the defaults are all that need no extra
package):

- ``movenet256`` / ``movenet512``: the node's detector, MoveNet MultiPose, at a long side of 256 (the
  node's default) and 512; its own keypoints.
- ``thunder``: MoveNet Thunder top-down on the detector's boxes with a flip test, smoothed offline
  along each track (the training labels' teacher; it sees the future).
- any TDMI weights file (``--model NAME=weights.pt``; ``NAME`` ending in ``_single_frame`` runs as a
  single-frame twin), through the runtime as the node runs it (its default backend and mode).
- ``template``: a blind baseline that never looks at the image: the training set's mean pose,
  normalised to the box, scaled into each box.
- ``mediapipe``: BlazePose full (``mediapipe==0.10.21``, optional, not a runtime dependency), video mode
  per tracked box crop.

Every top-down method uses the same person boxes and track ids (MoveNet 256 + the IoU tracker), so
all rows describe the same people. ``--degrade`` also writes ``<method>_degraded`` files in which the
key frame alone is degraded (an occluder on the person or motion blur, alternating), for TDMI models
and the detector.

With ``--calib`` the same command then scores all files with the multi-view metric (file and
refined calibration; the refinement pools ``--refine-from``, by default the detector, MoveNet 512,
Thunder and MediaPipe when present: never a TDMI model) and writes ``table.md`` / ``table.json``
plus ``worst_frames.png`` (each method's 3 worst frames side by side) to ``--out``.

Usage (the table in weights/MODEL_CARD.md)::

    python -m tdmi_core.tools.multiview_eval --videos assets/videos/pose2sim_cam0{1,2,3,4}.mp4 \\
        --calib assets/videos/pose2sim_Calib.qca.txt --degrade \\
        --model tdmi_movenet=weights/tdmi_movenet.pt tdmi_movenet_single_frame=weights/tdmi_movenet_single_frame.pt \\
        --out runs/multiview
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from tdmi_core.detection import MoveNetDetector, SinglePoseEstimator
from tdmi_core.eval.multiview.predictions import Detection, save_predictions
from tdmi_core.skeleton import NUM_KEYPOINTS
from tdmi_core.tools.frames import read_frames
from tdmi_core.tracking import IouTracker, box_iou

logger = logging.getLogger(__name__)

DETECTOR_MIN_SCORE = 0.2  # the detector node's default


@dataclass
class CameraTracks:
    """The shared people of one camera: per frame, track ids and boxes of the 256 detector."""

    frames: list[np.ndarray] = field(default_factory=list)  # BGR images
    boxes: list[np.ndarray] = field(default_factory=list)  # [N, 4]
    ids: list[np.ndarray] = field(default_factory=list)  # [N]
    keypoints: list[np.ndarray] = field(default_factory=list)  # [N, 17, 3] the detector's own


def read_video(path: Path, max_frames: int | None = None) -> list[np.ndarray]:
    """All frames of a video (BGR)."""
    frames = list(read_frames(path, max_frames=max_frames))
    if not frames:
        raise ValueError(f"{path}: no frame decoded")
    return frames


def track_camera(frames: list[np.ndarray], threads: int) -> tuple[CameraTracks, float]:
    """Detector (MoveNet 256) + IoU tracker on one camera; returns the tracks and ms per frame."""
    detector = MoveNetDetector(long_side_px=256, score_threshold=DETECTOR_MIN_SCORE, num_threads=threads)
    tracker = IouTracker(0.3, 10)
    out = CameraTracks(frames=frames)
    start = time.perf_counter()
    for frame in frames:
        det = detector.detect(frame)
        out.boxes.append(det.boxes_xyxy)
        out.ids.append(tracker.update(det.boxes_xyxy, det.scores))
        out.keypoints.append(det.keypoints)
    return out, 1e3 * (time.perf_counter() - start) / len(frames)


def _predictions(tracks: CameraTracks, keypoints: list[np.ndarray]) -> dict[int, list[Detection]]:
    """Per frame index: the shared people with this method's keypoints (the metric's format)."""
    return {f: [Detection(int(t), np.asarray(b, np.float64), np.asarray(k, np.float64)) for t, b, k in zip(ids, boxes, kps)]
            for f, (boxes, ids, kps) in enumerate(zip(tracks.boxes, tracks.ids, keypoints))}


def run_multipose(tracks: CameraTracks, long_side: int, threads: int, degrade_key: bool = False) -> tuple[list[np.ndarray], float]:
    """MoveNet MultiPose at ``long_side``; its people matched to the shared boxes by IoU (>= 0.3)."""
    from scipy.optimize import linear_sum_assignment

    detector = MoveNetDetector(long_side_px=long_side, score_threshold=0.05, num_threads=threads)
    out = []
    start = time.perf_counter()
    for f, (frame, boxes) in enumerate(zip(tracks.frames, tracks.boxes)):
        image = degraded_frame(frame, boxes, f) if degrade_key else frame
        det = detector.detect(image)
        kps = np.zeros((len(boxes), NUM_KEYPOINTS, 3), np.float32)
        if len(det) and len(boxes):
            iou = box_iou(np.asarray(boxes), det.boxes_xyxy)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= 0.3:
                    kps[r] = det.keypoints[c]
        out.append(kps)
    return out, 1e3 * (time.perf_counter() - start) / len(tracks.frames)


def run_thunder(tracks: CameraTracks, fps: float, threads: int) -> tuple[list[np.ndarray], float]:
    """The teacher of the training labels: Thunder top-down + flip, smoothed along each track."""
    from tdmi_core.data.teacher import TeacherConfig, smooth_track

    estimator = SinglePoseEstimator(num_threads=threads)
    start = time.perf_counter()
    raw = [estimator.estimate(frame, boxes) if len(boxes) else np.zeros((0, NUM_KEYPOINTS, 3), np.float32)
           for frame, boxes in zip(tracks.frames, tracks.boxes)]
    ms = 1e3 * (time.perf_counter() - start) / len(tracks.frames)
    cfg = TeacherConfig()
    members: dict[int, list[tuple[int, int]]] = {}
    for f, ids in enumerate(tracks.ids):
        for d, t in enumerate(ids):
            members.setdefault(int(t), []).append((f, d))
    for items in members.values():
        frames = np.array([f for f, _ in items])
        kps = np.stack([raw[f][d] for f, d in items])
        heights = np.array([tracks.boxes[f][d][3] - tracks.boxes[f][d][1] for f, d in items])
        smoothed = smooth_track(frames, kps, np.maximum(heights, 1.0), cfg.smooth_sigma_s * fps, cfg.outlier_fraction)
        for (f, d), k in zip(items, smoothed):
            raw[f][d] = k
    return raw, ms


def load_model(path: str, single_frame: bool):
    """``(model, model config)`` from a weights file; twins wrapped to see their key frame only."""
    from tdmi_core.models.weights import load_weights
    from tdmi_core.train.distill import as_single_frame_model

    model, cfg = load_weights(path)
    return (as_single_frame_model(model) if single_frame else model), cfg


def run_model(tracks: CameraTracks, weights: str, single_frame: bool, threads: int = 1,
              shared_joint_distance: float = 0.1) -> tuple[list[np.ndarray], float]:
    """A TDMI weights file through the runtime with the node's defaults (ONNX Runtime, aligned mode, shared-joint
    suppression), on the shared tracks; twins as ``runtime.single_frame`` serves them (every window the key
    frame repeated)."""
    from tdmi_core.runtime.config import load_runtime_config
    from tdmi_core.runtime.loading import build_estimator
    from tdmi_core.runtime.types import TrackedBox

    estimator, description = build_estimator(load_runtime_config(
        {"weights": weights, "single_frame": single_frame, "num_threads": threads,
         "shared_joint_distance": shared_joint_distance}))
    logger.info("running %s", description)
    out: list[np.ndarray | None] = [None] * len(tracks.frames)

    def store(results) -> None:
        for fp in results:
            f = fp.token
            by_id = {p.track_id: p.keypoints for p in fp.poses}
            out[f] = np.stack([by_id[int(t)] for t in tracks.ids[f]]) if len(tracks.ids[f]) else \
                np.zeros((0, NUM_KEYPOINTS, 3), np.float32)

    start = time.perf_counter()
    for f, (frame, boxes, ids) in enumerate(zip(tracks.frames, tracks.boxes, tracks.ids)):
        store(estimator.push(frame, [TrackedBox(int(t), b) for t, b in zip(ids, boxes)], token=f))
    store(estimator.flush())
    persons = max(1, sum(len(ids) for ids in tracks.ids))
    return [o for o in out if o is not None], 1e3 * (time.perf_counter() - start) / persons


def run_model_degraded(tracks: CameraTracks, weights: str, single_frame: bool) -> list[np.ndarray]:
    """Each key frame degraded alone (its neighbours clean): every window cropped exactly at its key box."""
    import torch

    from tdmi_core.codec import HeatmapCodec
    from tdmi_core.geometry import crop_affine_for_box, invert_affine, transform_points, warp_crop
    from tdmi_core.model_input import window_frames
    from tdmi_core.train.distill import crops_to_tensor

    model, cfg = load_model(weights, single_frame)
    codec = HeatmapCodec(cfg.input_size_hw, cfg.heatmap_size_hw, cfg.heatmap_sigma, refine=cfg.decode_refine)
    in_h, in_w = cfg.input_size_hw
    out = []
    n = len(tracks.frames)
    for f, boxes in enumerate(tracks.boxes):
        key_image = degraded_frame(tracks.frames[f], boxes, f)
        kps = np.zeros((len(boxes), NUM_KEYPOINTS, 3), np.float32)
        for p, box in enumerate(boxes):
            _, _, m = crop_affine_for_box(box, (in_h, in_w), 1.25)
            idx = window_frames(cfg.window, f, n, cfg.delta)
            crops = np.stack([warp_crop(key_image if i == f else tracks.frames[i], m, (in_w, in_h)) for i in idx])
            with torch.no_grad():
                heat = model.temporal_head(model.backbone(crops_to_tensor(crops))[None])
            xy, score = codec.decode(heat.numpy()[0])
            kps[p, :, :2] = transform_points(xy.astype(np.float64), invert_affine(m))
            kps[p, :, 2] = score
        out.append(kps)
    return out


def degraded_frame(frame: np.ndarray, boxes: np.ndarray, index: int) -> np.ndarray:
    """The frame with each person degraded: an occluder over part of the box (even frames) or motion blur (odd)."""
    from tdmi_core.data.augment import add_motion_blur, add_occluder

    rng = np.random.default_rng([7, index])
    image = frame.copy()
    for box in boxes:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        x1, y1 = max(0, x1), max(0, y1)
        x2, y2 = min(frame.shape[1], x2), min(frame.shape[0], y2)
        if x2 - x1 < 4 or y2 - y1 < 4:
            continue
        region = image[y1:y2, x1:x2]
        image[y1:y2, x1:x2] = add_occluder(region, rng) if index % 2 == 0 else add_motion_blur(region, rng)
    return image


def mean_pose(annotation_dir: Path) -> np.ndarray:
    """The training set's mean pose, ``[17, 2]`` in box-normalised coordinates ((x - x1) / w, (y - y1) / h)."""
    from tdmi_core.data.posetrack import read_split

    total = np.zeros((NUM_KEYPOINTS, 2))
    count = np.zeros((NUM_KEYPOINTS, 1))
    for video in read_split(annotation_dir, annotation_dir.parent.parent):
        for frame in video.frames:
            for person in frame.persons:
                x1, y1, x2, y2 = person.box_xyxy
                w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
                vis = person.keypoints[:, 2:3] > 0
                norm = (person.keypoints[:, :2] - (x1, y1)) / (w, h)
                total += np.where(vis, norm, 0.0)
                count += vis
    return total / np.maximum(count, 1)


def run_template(tracks: CameraTracks, template: np.ndarray) -> list[np.ndarray]:
    """The blind baseline: the mean pose scaled into each box (score 0.5 everywhere)."""
    out = []
    for boxes in tracks.boxes:
        kps = np.zeros((len(boxes), NUM_KEYPOINTS, 3), np.float32)
        for p, (x1, y1, x2, y2) in enumerate(boxes):
            kps[p, :, :2] = template * (x2 - x1, y2 - y1) + (x1, y1)
            kps[p, :, 2] = 0.5
        out.append(kps)
    return out


def run_mediapipe(tracks: CameraTracks) -> tuple[list[np.ndarray], float]:
    """BlazePose full (mediapipe 0.10.21's bundled model), video mode, one tracker per track, on box crops."""
    import mediapipe as mp  # optional: pip install mediapipe==0.10.21 in a separate environment

    # BlazePose's 33 landmarks -> COCO-17.
    coco = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
    poses: dict[int, Any] = {}
    out = []
    start = time.perf_counter()
    for frame, boxes, ids in zip(tracks.frames, tracks.boxes, tracks.ids):
        h, w = frame.shape[:2]
        kps = np.zeros((len(boxes), NUM_KEYPOINTS, 3), np.float32)
        for p, (box, t) in enumerate(zip(boxes, ids)):
            x1, y1, x2, y2 = box
            side = max(x2 - x1, y2 - y1) * 1.25
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            ox, oy = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            crop = frame[oy:int(min(h, cy + side / 2)), ox:int(min(w, cx + side / 2))]
            if crop.size == 0:
                continue
            if int(t) not in poses:
                poses[int(t)] = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1)
            res = poses[int(t)].process(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
            if res.pose_landmarks is None:
                continue
            lm = res.pose_landmarks.landmark
            ch, cw = crop.shape[:2]
            for k, i in enumerate(coco):
                kps[p, k] = (ox + lm[i].x * cw, oy + lm[i].y * ch, lm[i].visibility)
        out.append(kps)
    persons = max(1, sum(len(i) for i in tracks.ids))
    return out, 1e3 * (time.perf_counter() - start) / persons


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--videos", nargs="+", type=Path, required=True, help="one synchronised video per camera, in camera order")
    parser.add_argument("--cameras", nargs="*", help="camera names (default: cam01, cam02, ...)")
    parser.add_argument("--model", nargs="*", default=[], metavar="NAME=WEIGHTS", help="TDMI weights to run")
    parser.add_argument("--methods", nargs="*", default=["movenet256", "movenet512", "thunder", "template"],
                        help="built-in methods (movenet256 movenet512 thunder template mediapipe)")
    parser.add_argument("--degrade", action="store_true", help="also write key-frame-degraded predictions")
    parser.add_argument("--train-annotations", type=Path, default=Path("data/teacher/annotations/train"),
                        help="the template's source (the training set)")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--frame-step", type=int, default=1,
                        help="keep every Nth of those frames: a camera at the video's rate / N (windows span N times longer)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime / torch threads (1 = the table's timing)")
    parser.add_argument("--shared-joint-distance", type=float, default=0.1,
                        help="TDMI models: the runtime's shared-joint suppression radius (÷ box height; 0 = off)")
    parser.add_argument("--out", type=Path, default=Path("runs/multiview"))
    parser.add_argument("--calib", type=Path, help="the rig's calibration (Calib.qca.txt or .json): then print the table")
    parser.add_argument("--pred", nargs="*", default=[], metavar="NAME=FILE",
                        help="more prediction files for the table (e.g. mediapipe's, written in its own environment)")
    parser.add_argument("--reuse", action="store_true", help="keep prediction files that exist instead of recomputing")
    parser.add_argument("--refine-from", default="movenet256,movenet512,thunder,mediapipe",
                        help="methods pooled for the calibration refinement (those present are used)")
    parser.add_argument("--compare", nargs="*", default=[], metavar="A:B",
                        help="more paired comparisons for the tables (besides twin, sibling and detector)")
    args = parser.parse_args(argv)
    if args.frame_step < 1:
        parser.error(f"--frame-step must be >= 1, got {args.frame_step}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.model:  # torch only for TDMI models (the MediaPipe environment has none)
        import torch

        torch.set_num_threads(args.threads)
    cameras = args.cameras or [f"cam{i + 1:02d}" for i in range(len(args.videos))]
    (args.out / "pred").mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    timing: dict[str, list[float]] = {}

    def add(method: str, camera: str, tracks: CameraTracks, keypoints: list[np.ndarray], ms: float | None) -> None:
        results.setdefault(method, {})[camera] = _predictions(tracks, keypoints)
        if ms is not None:
            timing.setdefault(method, []).append(ms)

    template = mean_pose(args.train_annotations) if "template" in args.methods else None
    models = [item.split("=", 1) for item in args.model]
    if args.reuse:  # only what is missing
        have = {p.stem for p in (args.out / "pred").glob("*.json")}
        args.methods = [m for m in args.methods if m not in have]
        models = [(n, w) for n, w in models if n not in have]
        template = template if "template" in args.methods else None
    for camera, video in zip(cameras, args.videos):
        frames = read_video(video, args.max_frames)[:: args.frame_step]
        fps = (cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS) or 30.0) / args.frame_step
        tracks, ms = track_camera(frames, args.threads)
        logger.info("%s: %d frames, detector %.1f ms/frame", camera, len(frames), ms)
        add("movenet256", camera, tracks, tracks.keypoints, ms)
        if "movenet512" in args.methods:
            add("movenet512", camera, tracks, *run_multipose(tracks, 512, args.threads))
        if args.degrade:
            add("movenet256_degraded", camera, tracks, run_multipose(tracks, 256, args.threads, degrade_key=True)[0], None)
        if "thunder" in args.methods:
            add("thunder", camera, tracks, *run_thunder(tracks, fps, args.threads))
        if template is not None:
            add("template", camera, tracks, run_template(tracks, template), None)
        if "mediapipe" in args.methods:
            add("mediapipe", camera, tracks, *run_mediapipe(tracks))
        for name, weights in models:
            single = name.endswith("_single_frame")
            add(name, camera, tracks, *run_model(tracks, weights, single, args.threads, args.shared_joint_distance))
            if args.degrade:
                add(f"{name}_degraded", camera, tracks, run_model_degraded(tracks, weights, single), None)
            logger.info("%s: %s done", camera, name)
    for method, cams in results.items():
        save_predictions(cams, args.out / "pred" / f"{method}.json")
    summary = {m: round(float(np.mean(v)), 2) for m, v in timing.items()}
    timing_path = args.out / "timing_ms.json"
    old = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    timing_path.write_text(json.dumps({**old, **summary}, indent=1), encoding="utf-8")
    logger.info("wrote %d prediction files to %s; ms per frame (detector) / per person (top-down): %s",
                len(results), args.out / "pred", summary)
    if args.calib:
        print(score(args, cameras, [item.split("=", 1)[0] for item in args.model]))
    return 0


def _pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """Each model vs its single-frame twin (a causal model's is its symmetric sibling's), vs its symmetric
    sibling (causal models) and vs the detector, where present."""
    pairs = []
    for name in names:
        base, suffix = (name.removesuffix("_degraded"), "_degraded") if name.endswith("_degraded") else (name, "")
        if base.endswith("_single_frame") or base == "movenet256":
            continue
        symmetric = base.removesuffix("_causal")
        others = [f"{symmetric}_single_frame", symmetric if symmetric != base else None, "movenet256"]
        pairs += [(name, f"{other}{suffix}") for other in others if other and f"{other}{suffix}" in names]
    return pairs


def score(args: argparse.Namespace, cameras: list[str], model_names: list[str]) -> str:
    """Run the multi-view metric on every prediction file in ``args.out/pred`` (+ ``--pred``); write the tables.

    Two evaluations: every method on clean frames (the main table), and the key-frame-degraded runs
    on their own (each table compares methods on the samples all of its methods count).
    """
    from tdmi_core.eval.multiview import evaluate
    from tdmi_core.eval.multiview.calibration import load_calibration
    from tdmi_core.eval.multiview.evaluate import worst_frames
    from tdmi_core.eval.multiview.predictions import load_predictions
    from tdmi_core.eval.multiview.report import to_json, to_markdown

    files = {p.stem: p for p in sorted((args.out / "pred").glob("*.json"))}
    files.update({n: Path(f) for n, f in (item.split("=", 1) for item in args.pred)})
    calibration = load_calibration(args.calib)
    sections, report = [], {}
    clean = [n for n in files if not n.endswith("_degraded") and n != "mediapipe"]
    for title, names in (
        ("Clean frames", clean),
        # An optional extra that misses people now and then: on its own, so it does not shrink the common set.
        ("MediaPipe BlazePose (optional extra)", ["mediapipe", "movenet256", *model_names] if "mediapipe" in files else []),
        ("Key frame degraded (occluder or motion blur on the key frame only)", [n for n in files if n.endswith("_degraded")]),
    ):
        # The detector first: its people are the reference every other method is aligned to.
        names = sorted(names, key=lambda n: (not n.startswith("movenet256"), n))
        names = [n for n in dict.fromkeys(names) if n in files]
        if len(names) < 2:
            continue
        methods = {name: load_predictions(files[name]) for name in names}
        refine = [m for m in args.refine_from.split(",") if m in files]
        refine_methods = {m: load_predictions(files[m]) for m in refine}
        extra = [tuple(item.split(":", 1)) for item in args.compare]
        pairs = _pairs(names) + [(a, b) for a, b in extra if a in names and b in names]
        evaluation = evaluate(methods, calibration, pairs=pairs, refine_from=refine,
                              refine_pool=refine_methods, n_boot=1000, seed=0)
        kind = "refined" if refine else "file"
        worst = {name: worst_frames(evaluation, name, kind, 3) for name in names}
        sections.append(f"# {title}\n\n" + to_markdown(evaluation, worst))
        report[title] = to_json(evaluation, worst)
        if title == "Clean frames":
            render_worst_frames(evaluation, worst, dict(zip(cameras, args.videos)), kind, args.out / "worst_frames.png")
    markdown = "\n\n".join(sections)
    (args.out / "table.md").write_text(markdown, encoding="utf-8")
    (args.out / "table.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return markdown


def render_worst_frames(evaluation, worst: dict, videos: dict[str, Path], calibration: str, out_png: Path) -> Path:
    """One row per method, its worst frames side by side: the method's skeleton (colour) and, as white
    dots, where its other views triangulate each joint (what the held-out view was scored against)."""
    from tdmi_core.eval.multiview.camera import project
    from tdmi_core.eval.multiview.triangulation import robust_triangulate, view_weights
    from tdmi_core.visualize import draw_skeleton

    cams = evaluation.calibrations[calibration]
    names = evaluation.cameras
    cache: dict[str, list[np.ndarray]] = {}
    tile_h, tile_w = 320, 240
    rows = []
    for method, frames in worst.items():
        tiles = []
        arrays = evaluation.arrays[method]
        for w in frames:
            if w.camera not in cache:
                cache[w.camera] = read_video(videos[w.camera])
            c = names.index(w.camera)
            f = int(np.flatnonzero(arrays.frames == w.frame)[0])
            kp = arrays.keypoints[f, w.person]  # [C, K, 3]
            image = cache[w.camera][w.frame].copy()
            others = kp.copy()
            others[c, :, 2] = 0.0
            points, _ = robust_triangulate(others[..., :2].transpose(1, 0, 2), view_weights(others, 0.3).T, cams)
            ref = project(points, cams[c])
            draw_skeleton(image, kp[c].astype(np.float32), 0, None, min_score=0.0, thickness=4)
            for x, y in ref:
                if np.isfinite(x) and np.isfinite(y):
                    cv2.circle(image, (int(x), int(y)), 9, (255, 255, 255), -1)
            box = arrays.boxes[f, w.person, c]
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            side = max(box[2] - box[0], (box[3] - box[1]) * 0.75) * 1.3
            m = np.array([[tile_w / side, 0, tile_w / 2 - cx * tile_w / side],
                          [0, tile_w / side, tile_h / 2 - cy * tile_w / side]])
            tile = cv2.warpAffine(image, m, (tile_w, tile_h))
            cv2.putText(tile, f"{w.camera} f{w.frame} {w.mean_px:.0f}px", (5, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
        while len(tiles) < 3:
            tiles.append(np.zeros((tile_h, tile_w, 3), np.uint8))
        label = np.zeros((tile_h, 200, 3), np.uint8)
        cv2.putText(label, method[:24], (5, tile_h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(np.hstack([label, *tiles]))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), np.vstack(rows))
    return out_png


if __name__ == "__main__":
    raise SystemExit(main())
