"""Teacher-labelled video set: MoveNet keypoints on real videos, in PoseTrack18 layout.

No TDMI weights were released and PoseTrack is not available here, so the student is trained by
distillation. For every frame of the training videos (``scripts/fetch_assets.py`` puts the registry
ones in ``assets/videos/``; public-repository clips go in a local ``--extra`` folder, see
docs/teacher-dataset.md), MoveNet MultiPose (:class:`tdmi_core.detection.MoveNetDetector`) finds the
people, an :class:`tdmi_core.tracking.IouTracker` links them over time, and the labeller gives each box
its keypoints: by default MoveNet Thunder run top-down on the box with a flip test
(:class:`tdmi_core.detection.SinglePoseEstimator`), then smoothed along the track with outliers
damped (:func:`smooth_track`; offline labels may use the future). Each video (or video part) is
written as one PoseTrack18-style annotation json plus its frames as JPEG, so
:func:`tdmi_core.data.posetrack.read_split` and the same window datasets serve both PoseTrack and this set.

pose2sim's Demo_MultiPerson cameras are validation-only and are not in any list here.

Layout of ``--out`` (e.g. ``data/teacher``)::

    images/<video>/000000.jpg ...           every frame of the video part, in order
    annotations/train/<video>.json          PoseTrack18 layout, categories keypoints = COCO-17 names
    annotations/val/<video>.json            held-out part (see DEFAULT_VIDEOS)
    split.json  stats.json                  the split and counts (+ resolved settings)

Keypoint slots hold COCO-17 joints (eyes and ears, not PoseTrack's head_bottom/head_top), so the
category lists ``tdmi_core.skeleton.KEYPOINT_NAMES``; the reader reports them as ``keypoint_names``.
A joint is labelled (visibility 1) when the teacher's score is >= ``keypoint_threshold``; its
coordinates are written either way and ``scores`` holds the 17 teacher scores. ``bbox_head`` is an
approximate square around the face keypoints (see :func:`approx_head_box`), present only when at
least two face joints are labelled.

CLI::

    python -m tdmi_core.data.teacher build --out data/teacher
    python -m tdmi_core.data.teacher overlay --data data/teacher --video pose2sim_cam04 --frame 40 \
        --out docs/images/teacher_pose2sim_cam04.jpg
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import cv2
import numpy as np

from tdmi_core.detection import DEFAULT_MOVENET_ONNX, DEFAULT_THUNDER_ONNX, Detections, MoveNetDetector, SinglePoseEstimator
from tdmi_core.skeleton import KEYPOINT_INDEX, KEYPOINT_NAMES
from tdmi_core.tracking import IouTracker

__all__ = [
    "DEFAULT_VIDEOS",
    "TeacherConfig",
    "TeacherVideo",
    "VideoStats",
    "approx_head_box",
    "build_dataset",
    "build_video",
    "main",
    "render_overlay",
    "smooth_track",
]

logger = logging.getLogger(__name__)

Split = Literal["train", "val"]
Folder = Literal["assets", "extra"]
LABELLERS: tuple[str, ...] = ("thunder", "multipose")
FACE_JOINTS: tuple[int, ...] = tuple(KEYPOINT_INDEX[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"))
SHOULDERS: tuple[int, int] = (KEYPOINT_INDEX["left_shoulder"], KEYPOINT_INDEX["right_shoulder"])
# PoseTrack18 image ids: 1 + 7-digit video number + 4-digit frame index (10000000000 + vid * 10000 + frame).
_IMAGE_ID_BASE = 10_000_000_000
_MAX_FRAMES_PER_VIDEO = 10_000


@dataclass(frozen=True)
class TeacherVideo:
    """One video (or a frame range of one) and the teacher settings that suit it.

    Attributes:
        name: video id in the set (file stem of the json and the image folder).
        file: file name under the assets directory.
        split: "train" or "val" (held out from training, for evaluation).
        long_side_px: MoveNet input long side (256 native; 384-512 for small people).
        score_threshold: MoveNet instance score a person needs.
        tiles: side-by-side tiles per frame (MoveNet has 6 person slots per call; crowded scenes need 2).
        frame_range: ``(start, stop)`` source frame indices (stop exclusive, None = to the end).
        folder: "assets" (``assets/videos``, fetched from the registries) or "extra" (the local folder
            of public-repository clips given to ``build --extra``).
    """

    name: str
    file: str
    split: Split
    long_side_px: int = 256
    score_threshold: float = 0.25
    tiles: int = 1
    frame_range: tuple[int, int | None] = (0, None)
    folder: Folder = "assets"

    def __post_init__(self) -> None:
        if self.split not in ("train", "val"):
            raise ValueError(f"{self.name}: split must be 'train' or 'val', got {self.split!r}")
        start, stop = self.frame_range
        if start < 0 or (stop is not None and stop <= start):
            raise ValueError(f"{self.name}: frame_range {self.frame_range} must be 0 <= start < stop")


# The training videos (docs/teacher-dataset.md has sources and licences). Held out: the last 159 frames
# (20 %) of vtest (other pedestrians). vtest's pedestrians are 60-150 px tall: a long side of 512 and a
# 0.15 threshold find them, and two tiles lift MoveNet's 6-person cap. pose2sim's Demo_MultiPerson is
# the validation rig of the multi-view metric and is never labelled for training.
_ASL_SIGNS = ("again", "bird", "book", "brother", "eat", "help", "hungry", "learn", "milk", "night", "no",
              "please", "school", "sister", "sorry", "student", "thanks", "walk", "want", "yes")
DEFAULT_VIDEOS: tuple[TeacherVideo, ...] = (
    TeacherVideo("sports2d_demo", "sports2d_demo.mp4", "train", long_side_px=384),
    TeacherVideo("vtest_head", "vtest.avi", "train", long_side_px=512, score_threshold=0.15, tiles=2,
                 frame_range=(0, 636)),
    TeacherVideo("vtest_tail", "vtest.avi", "val", long_side_px=512, score_threshold=0.15, tiles=2,
                 frame_range=(636, None)),
    TeacherVideo("mg_dancer", "mg_dancer.avi", "train"),
    TeacherVideo("mg_pianist", "mg_pianist.avi", "train"),
    TeacherVideo("intel_one_by_one", "one-by-one-person-detection.mp4", "train", long_side_px=384, folder="extra"),
    # The repository's GIF previews are small (480x270): a long side of 512 finds their people.
    *(TeacherVideo(f"intel_{name.split('.')[0].replace('-', '_')}", f"preview/{name}", "train", long_side_px=512,
                   score_threshold=0.2, folder="extra")
      for name in ("worker-zone-detection.gif", "store-aisle-detection.gif", "classroom.gif",
                   "face-demographics-walking-and-pause.gif")),
    *(TeacherVideo(f"intel_asl_{sign}", f"asl_gestures/{sign}.mkv", "train", folder="extra") for sign in _ASL_SIGNS),
)


@dataclass(frozen=True)
class TeacherConfig:
    """Settings shared by all videos.

    Attributes:
        keypoint_threshold: teacher joint score for visibility 1 (a labelled joint / target weight 1).
        iou_threshold, max_missed_frames: :class:`IouTracker` settings.
        min_track_frames: tracks seen in fewer frames are dropped (flicker, false positives).
        jpeg_quality: quality of the extracted frames.
        num_threads: ONNX Runtime threads for the teacher.
        max_frames: label only the first N frames of each video part (tests, quick looks); None = all.
        onnx_path: the person detector (MoveNet MultiPose; also the keypoints of the "multipose" labeller).
        labeller: "thunder" (MoveNet Thunder top-down on each box, flip test, track smoothing) or
            "multipose" (the detector's own keypoints, the first set's labels).
        thunder_onnx: the Thunder model.
        smooth_sigma_s: Gaussian width (seconds) of the local quadratic fit along each track
            (:func:`smooth_track`); at most ~1 frame at 30 fps, so fast limbs keep their speed.
        outlier_fraction: a joint farther than this x box height from the median of its +-2-frame
            neighbours has its score damped (x0.25) before smoothing.
    """

    keypoint_threshold: float = 0.3
    iou_threshold: float = 0.3
    max_missed_frames: int = 5
    min_track_frames: int = 5
    jpeg_quality: int = 90
    num_threads: int = 1
    max_frames: int | None = None
    onnx_path: str = str(DEFAULT_MOVENET_ONNX)
    labeller: str = "thunder"
    thunder_onnx: str = str(DEFAULT_THUNDER_ONNX)
    smooth_sigma_s: float = 0.035
    outlier_fraction: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.keypoint_threshold <= 1.0:
            raise ValueError(f"keypoint_threshold must be in [0, 1], got {self.keypoint_threshold}")
        if self.min_track_frames < 1:
            raise ValueError(f"min_track_frames must be >= 1, got {self.min_track_frames}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or None, got {self.max_frames}")
        if self.labeller not in LABELLERS:
            raise ValueError(f"labeller must be one of {LABELLERS}, got {self.labeller!r}")
        if self.smooth_sigma_s < 0 or self.outlier_fraction <= 0:
            raise ValueError("smooth_sigma_s must be >= 0 and outlier_fraction > 0")


@dataclass
class VideoStats:
    """Counts of one written video part."""

    name: str
    split: str
    source_file: str
    frames: int = 0
    frames_with_people: int = 0
    persons: int = 0  # annotations written (person-frames)
    tracks: int = 0
    labelled_keypoints: int = 0
    dropped_short_track_detections: int = 0
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)


def approx_head_box(keypoints: np.ndarray, keypoint_threshold: float) -> np.ndarray | None:
    """Approximate head box ``[x, y, w, h]`` from the teacher's face joints (PoseTrack's ``bbox_head`` stand-in).

    A square centred slightly above the mean of the labelled face joints (nose, eyes, ears), with side
    1.6x the larger of their spread and half the shoulder width. Only a rough scale for PCKh-style
    normalisation, not a drawn head box.

    Args:
        keypoints: ``[K=17, 3]`` (x_px, y_px, score).

    Returns:
        ``[4]`` float (x, y, w, h), or None with fewer than two labelled face joints.
    """
    face = keypoints[list(FACE_JOINTS)]
    face = face[face[:, 2] >= keypoint_threshold, :2]
    if len(face) < 2:
        return None
    spread = float(np.ptp(face, axis=0).max())
    shoulders = keypoints[list(SHOULDERS)]
    if (shoulders[:, 2] >= keypoint_threshold).all():
        spread = max(spread, 0.5 * float(np.linalg.norm(shoulders[0, :2] - shoulders[1, :2])))
    side = 1.6 * max(spread, 1.0)
    cx, cy = face.mean(axis=0)
    cy -= 0.1 * side  # eyes and nose sit below the middle of the head
    return np.array([cx - side / 2, cy - side / 2, side, side], np.float64)


def smooth_track(
    frames: np.ndarray, keypoints: np.ndarray, box_heights: np.ndarray, sigma_frames: float,
    outlier_fraction: float = 0.2,
) -> np.ndarray:
    """Offline smoothing of one track's teacher joints: damp outliers, then a local quadratic fit.

    1. A joint farther than ``outlier_fraction`` x box height from the median of its neighbours
       within +-2 frames (at least two of them) is an outlier: its score is multiplied by 0.25, so it
       weighs little below and usually falls under the labelling threshold.
    2. Each joint's x and y are refit by weighted least squares with a quadratic in time over
       +-3 sigma, weights = score x Gaussian(sigma_frames); a quadratic keeps the speed and
       acceleration of fast limbs that a plain average would flatten.

    Args:
        frames: ``[T]`` increasing frame indices of the track (gaps allowed).
        keypoints: ``[T, K, 3]`` (x, y, score).
        box_heights: ``[T]`` person box heights in pixels.
        sigma_frames: Gaussian width in frames; below 0.5 only the outlier step runs.

    Returns:
        ``[T, K, 3]`` smoothed keypoints (scores after outlier damping).
    """
    frames = np.asarray(frames, np.float64)
    out = np.array(keypoints, np.float64, copy=True)
    t_count = len(frames)
    for t in range(t_count):
        near = np.flatnonzero((np.abs(frames - frames[t]) <= 2) & (np.arange(t_count) != t))
        if len(near) < 2:
            continue
        median = np.median(keypoints[near, :, :2], axis=0)  # [K, 2]
        far = np.linalg.norm(keypoints[t, :, :2] - median, axis=1) > outlier_fraction * box_heights[t]
        out[t, far, 2] *= 0.25
    if sigma_frames < 0.5:
        return out
    radius = max(1.0, 3.0 * sigma_frames)
    damped = out.copy()
    for t in range(t_count):
        sel = np.flatnonzero(np.abs(frames - frames[t]) <= radius)
        dt = frames[sel] - frames[t]  # [n]
        w = damped[sel, :, 2] * np.exp(-0.5 * (dt / sigma_frames) ** 2)[:, None]  # [n, K]
        basis = np.stack([np.ones_like(dt), dt, dt * dt], axis=1)  # [n, 3]
        if len(sel) < 3:
            continue
        for k in range(keypoints.shape[1]):
            wk = w[:, k]
            if np.count_nonzero(wk > 1e-6) < 3:
                continue
            a = basis * wk[:, None]
            gram = basis.T @ a
            if np.linalg.cond(gram) > 1e8:
                continue
            coef = np.linalg.solve(gram, a.T @ damped[sel, k, :2])  # [3, 2]
            out[t, k, :2] = coef[0]
    return out


def _open_video(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}; fetch the assets with `python scripts/fetch_assets.py`")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"OpenCV cannot open {path}; the file is corrupt: rerun `python scripts/fetch_assets.py`")
    return cap


def _iter_frames(cap: cv2.VideoCapture, start: int, stop: int | None):
    """Yield ``(source_index, frame_bgr)`` for source frames in [start, stop), decoding sequentially."""
    index = 0
    while stop is None or index < stop:
        ok, frame = cap.read()
        if not ok:
            return
        if index >= start:
            yield index, frame
        index += 1


def _gif_frames(path: Path, start: int, stop: int | None):
    """Like :func:`_iter_frames` for an animated GIF (OpenCV's video reader does not open them)."""
    from PIL import Image, ImageSequence

    with Image.open(path) as gif:
        for index, frame in enumerate(ImageSequence.Iterator(gif)):
            if stop is not None and index >= stop:
                return
            if index >= start:
                yield index, cv2.cvtColor(np.asarray(frame.convert("RGB")), cv2.COLOR_RGB2BGR)


def _video_info(path: Path) -> tuple[float, int]:
    """``(fps, frame count)`` of a video or GIF (count 0 when unknown)."""
    if path.suffix.lower() == ".gif":
        from PIL import Image

        with Image.open(path) as gif:
            return 1000.0 / max(1, gif.info.get("duration", 100)), int(getattr(gif, "n_frames", 1))
    cap = _open_video(path)
    try:
        return float(cap.get(cv2.CAP_PROP_FPS)) or 25.0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()


def build_video(
    video: TeacherVideo,
    video_number: int,
    assets_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    cfg: TeacherConfig = TeacherConfig(),
    show_progress: bool = True,
) -> VideoStats:
    """Label one video part with the teacher and write its frames and annotation json.

    Args:
        video: what to label and how.
        video_number: 1..999 number used in PoseTrack-style image ids (unique per set).
        assets_dir: directory holding ``video.file``.
        out_dir: dataset root (``images/`` and ``annotations/<split>/`` are created under it).

    Returns:
        The counts written.
    """
    from tqdm import tqdm

    if not 1 <= video_number <= 999:
        raise ValueError(f"video_number must be in 1..999, got {video_number}")
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    src = Path(assets_dir) / video.file
    if not src.is_file():
        raise FileNotFoundError(f"video not found: {src}; see docs/teacher-dataset.md for where each clip comes from")
    fps, total = _video_info(src)
    start, stop = video.frame_range
    if cfg.max_frames is not None:
        stop = start + cfg.max_frames if stop is None else min(stop, start + cfg.max_frames)
    expected = max(0, (min(stop, total) if stop is not None else total) - start) if total > 0 else None
    if src.suffix.lower() == ".gif":
        cap = None
        frames_iter = _gif_frames(src, start, stop)
    else:
        cap = _open_video(src)
        frames_iter = _iter_frames(cap, start, stop)

    detector = MoveNetDetector(cfg.onnx_path, long_side_px=video.long_side_px, score_threshold=video.score_threshold,
                               tiles=video.tiles, num_threads=cfg.num_threads)
    estimator = (SinglePoseEstimator(cfg.thunder_onnx, num_threads=cfg.num_threads)
                 if cfg.labeller == "thunder" else None)
    tracker = IouTracker(cfg.iou_threshold, cfg.max_missed_frames)
    image_dir = out_dir / "images" / video.name
    image_dir.mkdir(parents=True, exist_ok=True)

    per_frame: list[tuple[int, Detections, np.ndarray]] = []  # (source index, detections, track ids)
    height = width = 0
    try:
        for local, (source_index, frame) in enumerate(
            tqdm(frames_iter, total=expected, desc=video.name, unit="frame", disable=not show_progress)
        ):
            if local >= _MAX_FRAMES_PER_VIDEO:
                raise ValueError(f"{video.name}: more than {_MAX_FRAMES_PER_VIDEO} frames; split it with frame_range")
            height, width = frame.shape[:2]
            dets = detector.detect(frame)
            if estimator is not None and len(dets):
                dets = Detections(dets.boxes_xyxy, dets.scores, estimator.estimate(frame, dets.boxes_xyxy))
            ids = tracker.update(dets.boxes_xyxy, dets.scores)
            per_frame.append((source_index, dets, ids))
            path = image_dir / f"{local:06d}.jpg"
            if not cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]):
                raise OSError(f"could not write {path}")
    finally:
        if cap is not None:
            cap.release()
    if not per_frame:
        raise ValueError(f"{src}: no frame decoded in range {video.frame_range}")
    if cfg.labeller == "thunder":
        _smooth_tracks(per_frame, cfg.smooth_sigma_s * fps, cfg.outlier_fraction)

    track_len = Counter(int(t) for _, _, ids in per_frame for t in ids)
    stats = VideoStats(video.name, video.split, video.file, frames=len(per_frame),
                       settings={"long_side_px": video.long_side_px, "score_threshold": video.score_threshold,
                                 "tiles": video.tiles, "frame_range": [start, start + len(per_frame)],
                                 "fps": round(fps, 3), "labeller": cfg.labeller})
    images, annotations = [], []
    kept_tracks: set[int] = set()
    for local, (source_index, dets, ids) in enumerate(per_frame):
        image_id = _IMAGE_ID_BASE + video_number * _MAX_FRAMES_PER_VIDEO + local
        images.append({
            "id": image_id, "file_name": f"images/{video.name}/{local:06d}.jpg", "frame_id": image_id,
            "vid_id": video.name, "nframes": len(per_frame), "is_labeled": True,
            "width": width, "height": height, "source_frame_index": source_index,
        })
        n_here = 0
        for det_index, track_id in enumerate(ids):
            track_id = int(track_id)
            if track_len[track_id] < cfg.min_track_frames:
                stats.dropped_short_track_detections += 1
                continue
            kps = dets.keypoints[det_index]
            visible = kps[:, 2] >= cfg.keypoint_threshold
            if not visible.any():
                continue  # no joint to learn from; the reader would skip it anyway
            x1, y1, x2, y2 = (float(v) for v in dets.boxes_xyxy[det_index])
            flat = np.stack([kps[:, 0], kps[:, 1], visible.astype(np.float32)], axis=-1).reshape(-1)
            ann = {
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "track_id": track_id,
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "keypoints": [round(float(v), 2) for v in flat],
                "scores": [round(float(v), 4) for v in kps[:, 2]],
                "score": round(float(dets.scores[det_index]), 4),
            }
            head = approx_head_box(kps, cfg.keypoint_threshold)
            if head is not None:
                ann["bbox_head"] = [round(float(v), 2) for v in head]
            annotations.append(ann)
            kept_tracks.add(track_id)
            stats.labelled_keypoints += int(visible.sum())
            n_here += 1
        stats.frames_with_people += int(n_here > 0)
    stats.persons = len(annotations)
    stats.tracks = len(kept_tracks)

    data = {
        "info": {
            "description": f"teacher-labelled {video.name} (people: MoveNet MultiPose Lightning, long side "
                           f"{video.long_side_px} px, {video.tiles} tile(s), instance score >= {video.score_threshold}; "
                           f"keypoints: {cfg.labeller})",
            "source_video": video.file, "keypoint_threshold": cfg.keypoint_threshold,
            "bbox_head": "approximate, from face keypoints (tdmi_core.data.teacher.approx_head_box)",
        },
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person",
                        "keypoints": list(KEYPOINT_NAMES), "skeleton": []}],
    }
    ann_path = out_dir / "annotations" / video.split / f"{video.name}.json"
    ann_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = ann_path.with_suffix(".json.part")
    tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    tmp.replace(ann_path)
    stats.seconds = round(time.perf_counter() - t0, 1)
    logger.info("%s: %d frames, %d persons in %d tracks, %d labelled joints -> %s (%.1f s)", video.name,
                stats.frames, stats.persons, stats.tracks, stats.labelled_keypoints, ann_path, stats.seconds)
    return stats


def _smooth_tracks(per_frame: list[tuple[int, Detections, np.ndarray]], sigma_frames: float,
                   outlier_fraction: float) -> None:
    """Apply :func:`smooth_track` to every track's keypoints in place (frames are local indices)."""
    tracks: dict[int, list[tuple[int, int]]] = {}
    for local, (_, dets, ids) in enumerate(per_frame):
        for det_index, track_id in enumerate(ids):
            tracks.setdefault(int(track_id), []).append((local, det_index))
    for members in tracks.values():
        locals_ = np.array([m[0] for m in members])
        kps = np.stack([per_frame[f][1].keypoints[d] for f, d in members])
        heights = np.array([per_frame[f][1].boxes_xyxy[d, 3] - per_frame[f][1].boxes_xyxy[d, 1] for f, d in members])
        smoothed = smooth_track(locals_, kps, np.maximum(heights, 1.0), sigma_frames, outlier_fraction)
        for (f, d), kp in zip(members, smoothed):
            per_frame[f][1].keypoints[d] = kp


def build_dataset(
    out_dir: str | os.PathLike,
    assets_dir: str | os.PathLike,
    videos: Sequence[TeacherVideo] = DEFAULT_VIDEOS,
    cfg: TeacherConfig = TeacherConfig(),
    show_progress: bool = True,
    extra_dir: str | os.PathLike | None = None,
) -> list[VideoStats]:
    """Label every video part and write ``split.json`` and ``stats.json`` next to the annotations.

    Video numbers (for image ids) follow the order of ``DEFAULT_VIDEOS`` so a partial rebuild keeps them.
    Videos of the "extra" folder are skipped (with a warning) when ``extra_dir`` is None or lacks them.
    """
    names = [v.name for v in videos]
    if len(set(names)) != len(names):
        raise ValueError(f"video names must be unique, got {names}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    default_numbers = {v.name: i + 1 for i, v in enumerate(DEFAULT_VIDEOS)}
    next_number = len(DEFAULT_VIDEOS) + 1
    stats = []
    for video in videos:
        number = default_numbers.get(video.name)
        if number is None:
            number, next_number = next_number, next_number + 1
        folder = Path(assets_dir) if video.folder == "assets" else (Path(extra_dir) if extra_dir else None)
        if folder is None or not (folder / video.file).is_file():
            if video.folder == "assets":
                raise FileNotFoundError(f"{video.file} not in {assets_dir}: run `python scripts/fetch_assets.py`")
            logger.warning("skipping %s: %s not found in the extra folder %s (docs/teacher-dataset.md)",
                           video.name, video.file, extra_dir)
            continue
        stats.append(build_video(video, number, folder, out_dir, cfg, show_progress))
    # A partial rebuild (--videos) keeps the other parts' entries: the json files on disk are the set.
    stats_path = out_dir / "stats.json"
    entries = {s.name: asdict(s) for s in stats}
    if stats_path.is_file():
        previous = json.loads(stats_path.read_text(encoding="utf-8")).get("videos", [])
        for entry in previous:
            if entry["name"] not in entries and (out_dir / "annotations" / entry["split"] / f"{entry['name']}.json").is_file():
                entries[entry["name"]] = entry
    order = {v.name: i for i, v in enumerate(DEFAULT_VIDEOS)}
    merged = sorted(entries.values(), key=lambda e: (order.get(e["name"], len(order)), e["name"]))
    split = {
        "train": [e["name"] for e in merged if e["split"] == "train"],
        "val": [e["name"] for e in merged if e["split"] == "val"],
        "rule": "the last 20 % of vtest is held out; pose2sim Demo_MultiPerson is validation-only and never labelled",
        "annotation_dirs": {"train": "annotations/train", "val": "annotations/val"},
        "image_root": ".",
    }
    (out_dir / "split.json").write_text(json.dumps(split, indent=2) + "\n", encoding="utf-8")
    config = asdict(cfg)
    config["onnx_path"] = os.path.basename(cfg.onnx_path)  # no machine paths in outputs
    config["thunder_onnx"] = os.path.basename(cfg.thunder_onnx)
    stats_path.write_text(json.dumps({"config": config, "videos": merged}, indent=2) + "\n", encoding="utf-8")
    return stats


def render_overlay(
    data_dir: str | os.PathLike, video_name: str, frame_index: int, out_path: str | os.PathLike,
    width_px: int = 480,
) -> Path:
    """Draw one written frame with its annotations, read back through the PoseTrack reader.

    Args:
        data_dir: dataset root written by :func:`build_dataset`.
        video_name: video part name; its json is looked up under ``annotations/{train,val}``.
        frame_index: frame position within the video part.
        out_path: image to write (scaled to ``width_px`` wide).
    """
    from tdmi_core.data.posetrack import read_posetrack18
    from tdmi_core.visualize import draw_skeleton

    data_dir = Path(data_dir)
    candidates = [data_dir / "annotations" / s / f"{video_name}.json" for s in ("train", "val")]
    found = [p for p in candidates if p.is_file()]
    if not found:
        raise FileNotFoundError(f"no annotation json for {video_name!r} under {data_dir / 'annotations'}; run `build` first")
    record = read_posetrack18(found[0])
    if not 0 <= frame_index < record.num_frames:
        raise ValueError(f"{video_name} has frames 0..{record.num_frames - 1}, got {frame_index}")
    frame = record.frames[frame_index]
    image = cv2.imread(str(data_dir / frame.file_name))
    if image is None:
        raise FileNotFoundError(f"cannot read {data_dir / frame.file_name}")
    for person in frame.persons:
        draw_skeleton(image, person.keypoints, person.track_id, person.box_xyxy, min_score=0.5)
        if person.head_box_xyxy is not None:
            x1, y1, x2, y2 = (int(round(v)) for v in person.head_box_xyxy)
            cv2.rectangle(image, (x1, y1), (x2, y2), (255, 255, 255), 1)
    s = width_px / image.shape[1]
    image = cv2.resize(image, (width_px, round(image.shape[0] * s)), interpolation=cv2.INTER_AREA)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_path), image, [cv2.IMWRITE_JPEG_QUALITY, 80]):
        raise OSError(f"could not write {out_path}")
    return out_path


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tdmi-teacher", description="Build the teacher-labelled video set.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="label the videos and write frames + PoseTrack18 json",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    build.add_argument("--out", type=Path, required=True, help="dataset root to write")
    build.add_argument("--assets", type=Path, default=Path("assets/videos"), help="where fetch_assets.py put the videos")
    build.add_argument("--extra", type=Path, default=Path("data/extra_videos"),
                       help="local folder with the public-repository clips (docs/teacher-dataset.md); missing ones are skipped")
    build.add_argument("--labeller", choices=LABELLERS, default=TeacherConfig.labeller, help="keypoint teacher")
    build.add_argument("--videos", nargs="+", choices=[v.name for v in DEFAULT_VIDEOS],
                       help="label only these video parts (default: all)")
    build.add_argument("--max-frames", type=int, default=None, help="label only the first N frames of each part")
    build.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    build.add_argument("--keypoint-threshold", type=float, default=TeacherConfig.keypoint_threshold)
    build.add_argument("--min-track-frames", type=int, default=TeacherConfig.min_track_frames)
    build.add_argument("--onnx", type=Path, default=DEFAULT_MOVENET_ONNX, help="teacher model")
    build.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    overlay = sub.add_parser("overlay", help="draw a written frame's annotations",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    overlay.add_argument("--data", type=Path, required=True, help="dataset root written by build")
    overlay.add_argument("--video", required=True, help="video part name")
    overlay.add_argument("--frame", type=int, required=True, help="frame index within the part")
    overlay.add_argument("--out", type=Path, required=True, help="image to write")
    overlay.add_argument("--width", type=int, default=480, help="output width in pixels")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tdmi_core.data.teacher`` (console name ``tdmi-teacher``)."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "overlay":
        path = render_overlay(args.data, args.video, args.frame, args.out, args.width)
        logger.info("wrote %s", path)
        return 0
    cfg = TeacherConfig(keypoint_threshold=args.keypoint_threshold, min_track_frames=args.min_track_frames,
                        num_threads=args.threads, max_frames=args.max_frames, onnx_path=str(args.onnx),
                        labeller=args.labeller)
    videos = [v for v in DEFAULT_VIDEOS if args.videos is None or v.name in args.videos]
    stats = build_dataset(args.out, args.assets, videos, cfg, show_progress=not args.no_progress, extra_dir=args.extra)
    header = f"{'video':<16} {'split':<5} {'frames':>6} {'w/people':>8} {'persons':>7} {'tracks':>6} {'joints':>7} {'s':>6}"
    lines = [header] + [
        f"{s.name:<16} {s.split:<5} {s.frames:>6} {s.frames_with_people:>8} {s.persons:>7} {s.tracks:>6} "
        f"{s.labelled_keypoints:>7} {s.seconds:>6.1f}" for s in stats
    ]
    logger.info("teacher set written to %s\n%s", args.out, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
