"""PoseTrack annotation readers: PoseTrack2017 (official json conversion), PoseTrack2018, PoseTrack21.

Every reader returns :class:`VideoRecord` objects that list *all* frames of a video in time order
(the windows need unlabelled neighbours) and the labelled persons of the labelled frames, with
keypoints in the 17-slot COCO order of ``tdmi_core.skeleton`` (PoseTrack fills slots 1/2 with
head_bottom/head_top and leaves the ears empty; a teacher-labelled set may carry real COCO names:
``VideoRecord.keypoint_names`` says which, and the flip pairs are derived from those names).

Formats (one json file per video):
- PoseTrack2017 ``{"annolist": [{"image": [{"name"}], "imgnum": [n], "annorect": [{"x1","y1","x2","y2"
  (head box), "track_id", "annopoints": [{"point": [{"id", "x", "y", "is_visible"}]}]}]}]}``; every value
  is wrapped in a one-element list, joint ids use poseval's 15-joint order, only labelled frames are
  listed (unlabelled neighbours are found by listing the image directory) and there is no person box
  (we use poseval's: the keypoint extent enlarged 1.3x).
- PoseTrack2018 / PoseTrack21 (COCO style) ``{"images": [{"file_name", "id", "frame_id", "vid_id",
  "nframes", "is_labeled", "ignore_regions_x/y"}], "annotations": [{"image_id", "track_id", "bbox"
  (xywh), "bbox_head", "keypoints" [51]}], "categories": [{"name": "person", "keypoints": [17 names]}]}``.
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from tdmi_core.skeleton import KEYPOINT_NAMES, NUM_KEYPOINTS, POSETRACK_KEYPOINT_NAMES

logger = logging.getLogger(__name__)

PoseTrackFormat = Literal["posetrack17", "posetrack18", "posetrack21", "auto"]

# poseval's joint ids for the 2017 ``annopoints`` (py/convert.py ``POSETRACK18_LM_NAMES`` order).
POSETRACK17_JOINT_ID_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "head_bottom", "nose", "head_top",
)
# Person box of a 2017 annotation: poseval's keypoint extent around its centre, x 0.65 per side.
POSETRACK17_BOX_HALF_EXTENT = 0.65
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class AnnotationError(ValueError):
    """A malformed or inconsistent annotation file; the message names the file and the entry."""


@dataclass(frozen=True)
class PersonAnnotation:
    """One labelled person in one frame.

    Attributes:
        track_id: Person identity within the video.
        keypoints: ``[K=17, 3]`` float32 (x_px, y_px, visibility) in 17-slot COCO order; visibility
            > 0 marks a labelled joint (its target weight is 1).
        box_xyxy: ``[4]`` person box in pixels (x1, y1, x2, y2).
        head_box_xyxy: ``[4]`` head box or None.
    """

    track_id: int
    keypoints: np.ndarray
    box_xyxy: np.ndarray
    head_box_xyxy: np.ndarray | None = None

    @property
    def num_labelled(self) -> int:
        return int((self.keypoints[:, 2] > 0).sum())


@dataclass(frozen=True)
class FrameRecord:
    """One frame of a video: its image path (relative to the image root) and labelled persons."""

    file_name: str
    image_id: int | None
    is_labeled: bool
    persons: tuple[PersonAnnotation, ...] = ()
    ignore_regions: tuple[np.ndarray, ...] = ()  # each [P, 2] polygon (x, y)


@dataclass(frozen=True)
class VideoRecord:
    """All frames of one video in time order (index = position in the video)."""

    video_id: str
    frames: tuple[FrameRecord, ...]
    source: str
    keypoint_names: tuple[str, ...] = POSETRACK_KEYPOINT_NAMES
    fmt: str = "posetrack18"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def labelled_indices(self) -> list[int]:
        """Indices of frames marked labelled that carry at least one person."""
        return [i for i, f in enumerate(self.frames) if f.is_labeled and f.persons]


# ----------------------------------------------------------------------------------------------
# helpers


def _load_json(path: Path) -> Any:
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as e:
        raise AnnotationError(f"{path}: annotation file not found") from e
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: not valid json ({e}); re-download or re-convert the file") from e


def _scalar(value: Any, where: str) -> Any:
    """Unwrap PoseTrack2017's one-element lists (``"x": [12.5]``)."""
    if isinstance(value, list):
        if len(value) != 1:
            raise AnnotationError(f"{where}: expected a one-element list, got {len(value)} elements")
        return value[0]
    return value


def _number(value: Any, where: str) -> float:
    value = _scalar(value, where)
    try:
        out = float(value)
    except (TypeError, ValueError) as e:
        raise AnnotationError(f"{where}: expected a number, got {value!r}") from e
    if not math.isfinite(out):
        raise AnnotationError(f"{where}: value {value!r} is not finite")
    return out


def _require(entry: dict, key: str, where: str) -> Any:
    if not isinstance(entry, dict):
        raise AnnotationError(f"{where}: expected an object, got {type(entry).__name__}")
    if key not in entry:
        raise AnnotationError(f"{where}: missing required key '{key}'")
    return entry[key]


def _xywh_to_xyxy(box: Any, where: str) -> np.ndarray:
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise AnnotationError(f"{where}: box must be [x, y, w, h], got {box!r}")
    x, y, w, h = (_number(v, where) for v in box)
    if w < 0 or h < 0:
        raise AnnotationError(f"{where}: box {box!r} has negative width or height")
    return np.array([x, y, x + w, y + h], dtype=np.float32)


def keypoint_box(keypoints: np.ndarray, half_extent: float = POSETRACK17_BOX_HALF_EXTENT) -> np.ndarray | None:
    """Box around the labelled keypoints (``[K, 3]``) as poseval builds it: centre +- extent * half_extent."""
    labelled = keypoints[keypoints[:, 2] > 0, :2]
    if len(labelled) == 0:
        return None
    lo, hi = labelled.min(axis=0), labelled.max(axis=0)
    centre, extent = (lo + hi) / 2.0, hi - lo
    return np.concatenate([centre - extent * half_extent, centre + extent * half_extent]).astype(np.float32)


def _ignore_regions(xs: Any, ys: Any, where: str) -> tuple[np.ndarray, ...]:
    if xs is None and ys is None:
        return ()
    if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
        raise AnnotationError(f"{where}: ignore_regions_x / ignore_regions_y must be lists of equal length")
    regions = []
    for i, (rx, ry) in enumerate(zip(xs, ys)):
        if not isinstance(rx, list) or not isinstance(ry, list) or len(rx) != len(ry):
            raise AnnotationError(f"{where}: ignore region {i} has x and y lists of different lengths")
        if rx:
            regions.append(np.stack([np.asarray(rx, np.float32), np.asarray(ry, np.float32)], axis=1))
    return tuple(regions)


def _frame_number(file_name: str) -> int | None:
    stem = os.path.splitext(os.path.basename(file_name))[0].split("_")[0]
    return int(stem) if stem.isdigit() else None


# ----------------------------------------------------------------------------------------------
# PoseTrack2017 (annolist)


def read_posetrack17(path: str | os.PathLike, image_root: str | os.PathLike) -> VideoRecord:
    """Read one PoseTrack2017 json (official .mat -> json conversion, ``annolist`` layout).

    Args:
        path: The video's json file.
        image_root: Directory the ``image.name`` paths are relative to; the video's frame directory is
            listed there because 2017 files list only labelled frames.

    Raises:
        AnnotationError: naming the file and the entry, for malformed or inconsistent content.
    """
    path = Path(path)
    data = _load_json(path)
    annolist = _require(data, "annolist", f"{path}")
    if not isinstance(annolist, list) or not annolist:
        raise AnnotationError(f"{path}: 'annolist' must be a non-empty list")
    slot_of_id = {i: POSETRACK_KEYPOINT_NAMES.index(name) for i, name in enumerate(POSETRACK17_JOINT_ID_NAMES)}

    labelled: dict[str, FrameRecord] = {}
    video_dir: str | None = None
    for i, entry in enumerate(annolist):
        where = f"{path}: annolist[{i}]"
        image = _require(entry, "image", where)
        name = str(_require(_scalar(image, f"{where}.image"), "name", f"{where}.image"))
        if video_dir is None:
            video_dir = os.path.dirname(name)
        elif os.path.dirname(name) != video_dir:
            raise AnnotationError(f"{where}: image '{name}' is not in the video directory '{video_dir}' of earlier entries")
        if name in labelled:
            raise AnnotationError(f"{where}: image '{name}' is listed twice")
        persons = []
        track_ids: set[int] = set()
        for j, rect in enumerate(entry.get("annorect", []) or []):
            pwhere = f"{where}.annorect[{j}]"
            track_id = int(_number(_require(rect, "track_id", pwhere), f"{pwhere}.track_id"))
            if track_id in track_ids:
                raise AnnotationError(f"{pwhere}: track_id {track_id} appears twice in the same frame")
            track_ids.add(track_id)
            kps = np.zeros((NUM_KEYPOINTS, 3), np.float32)
            annopoints = rect.get("annopoints") or []
            points = _require(_scalar(annopoints, f"{pwhere}.annopoints"), "point", f"{pwhere}.annopoints") if annopoints else []
            for k, point in enumerate(points or []):
                kwhere = f"{pwhere}.annopoints[0].point[{k}]"
                joint_id = int(_number(_require(point, "id", kwhere), f"{kwhere}.id"))
                if joint_id not in slot_of_id:
                    raise AnnotationError(f"{kwhere}: joint id {joint_id} outside PoseTrack's 0..14")
                slot = slot_of_id[joint_id]
                if kps[slot, 2] > 0:
                    raise AnnotationError(f"{kwhere}: joint id {joint_id} given twice for this person")
                vis = _number(point.get("is_visible", 1), f"{kwhere}.is_visible") if "is_visible" in point else 1.0
                kps[slot] = (_number(_require(point, "x", kwhere), f"{kwhere}.x"),
                             _number(_require(point, "y", kwhere), f"{kwhere}.y"), 1.0 if vis > 0 else 0.0)
            head = None
            if all(k in rect for k in ("x1", "y1", "x2", "y2")):
                head = np.array([_number(rect[k], f"{pwhere}.{k}") for k in ("x1", "y1", "x2", "y2")], np.float32)
            box = keypoint_box(kps)
            if box is None:
                continue  # a person without labelled joints gives no target
            persons.append(PersonAnnotation(track_id, kps, box, head))
        regions = []
        for r, region in enumerate(entry.get("ignore_regions", []) or []):
            pts = _require(region, "point", f"{where}.ignore_regions[{r}]") or []
            if pts:
                regions.append(np.array([[_number(p["x"], where), _number(p["y"], where)] for p in pts], np.float32))
        is_labeled = bool(_number(entry.get("is_labeled", [1]), f"{where}.is_labeled"))
        labelled[name] = FrameRecord(name, None, is_labeled, tuple(persons), tuple(regions))

    assert video_dir is not None
    frame_dir = Path(image_root) / video_dir
    if not frame_dir.is_dir():
        raise AnnotationError(
            f"{path}: frame directory '{frame_dir}' not found; PoseTrack2017 files list only labelled frames, "
            "so the reader lists the video's frames there (check --image-root / data.image_root)"
        )
    names = sorted(p.name for p in frame_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    all_names = [f"{video_dir}/{n}" if video_dir else n for n in names]
    missing = sorted(set(labelled) - set(all_names))
    if missing:
        raise AnnotationError(f"{path}: labelled image '{missing[0]}' not found in '{frame_dir}' ({len(missing)} missing)")
    frames = tuple(labelled.get(n, FrameRecord(n, None, False)) for n in all_names)
    video_id = os.path.basename(video_dir).split("_")[0] or path.stem
    return VideoRecord(video_id, frames, str(path), POSETRACK_KEYPOINT_NAMES, "posetrack17")


# ----------------------------------------------------------------------------------------------
# PoseTrack2018 / PoseTrack21 (COCO style)


def _keypoint_names(data: dict, path: Path) -> tuple[str, ...]:
    cats = _require(data, "categories", str(path))
    if not isinstance(cats, list) or not cats:
        raise AnnotationError(f"{path}: 'categories' must be a non-empty list")
    persons = [c for c in cats if isinstance(c, dict) and c.get("name") == "person"]
    if len(persons) != 1:
        raise AnnotationError(f"{path}: expected exactly one category named 'person', found {len(persons)}")
    names = tuple(str(n) for n in _require(persons[0], "keypoints", f"{path}: categories[person]"))
    if len(names) != NUM_KEYPOINTS:
        raise AnnotationError(f"{path}: categories[person].keypoints has {len(names)} names, expected {NUM_KEYPOINTS}")
    if names not in (POSETRACK_KEYPOINT_NAMES, KEYPOINT_NAMES):
        raise AnnotationError(
            f"{path}: categories[person].keypoints {list(names)} match neither the PoseTrack 17-slot names "
            f"{list(POSETRACK_KEYPOINT_NAMES)} nor COCO-17 {list(KEYPOINT_NAMES)}"
        )
    return names


def read_posetrack18(path: str | os.PathLike, fmt: Literal["posetrack18", "posetrack21"] = "posetrack18") -> VideoRecord:
    """Read one PoseTrack2018 / PoseTrack21 / teacher-labelled (same layout) json file.

    PoseTrack21 flags occluded joints with visibility 0 but keeps their coordinates, so for ``posetrack21``
    a joint is labelled when its flag is > 0 or its coordinates are not (0, 0); for ``posetrack18`` the
    flag alone decides.

    Raises:
        AnnotationError: naming the file and the entry, for malformed or inconsistent content.
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict) or "images" not in data:
        raise AnnotationError(f"{path}: missing required key 'images' (is this a PoseTrack2017 'annolist' file?)")
    names = _keypoint_names(data, path)
    images = data["images"]
    if not isinstance(images, list) or not images:
        raise AnnotationError(f"{path}: 'images' must be a non-empty list")

    by_id: dict[int, dict] = {}
    vid_ids: set[str] = set()
    nframes_values: set[int] = set()
    for i, img in enumerate(images):
        where = f"{path}: images[{i}]"
        image_id = int(_number(_require(img, "id", where), f"{where}.id"))
        if image_id in by_id:
            raise AnnotationError(f"{where}: duplicate image id {image_id}")
        _require(img, "file_name", where)
        by_id[image_id] = img
        if "vid_id" in img:
            vid_ids.add(str(img["vid_id"]))
        if "nframes" in img:
            nframes_values.add(int(_number(img["nframes"], f"{where}.nframes")))
    if len(vid_ids) > 1:
        raise AnnotationError(f"{path}: images belong to several videos {sorted(vid_ids)}; expected one video per file")
    if len(nframes_values) > 1:
        raise AnnotationError(f"{path}: images disagree on 'nframes' ({sorted(nframes_values)})")
    if nframes_values and nframes_values != {len(images)}:
        raise AnnotationError(
            f"{path}: 'nframes' says {nframes_values.pop()} frames but 'images' lists {len(images)}; "
            "every frame of the video must be listed (labelled or not)"
        )

    persons: dict[int, list[PersonAnnotation]] = {i: [] for i in by_id}
    seen_tracks: dict[int, set[int]] = {i: set() for i in by_id}
    seen_ann_ids: set[int] = set()
    for j, ann in enumerate(data.get("annotations", []) or []):
        where = f"{path}: annotations[{j}]"
        image_id = int(_number(_require(ann, "image_id", where), f"{where}.image_id"))
        if image_id not in by_id:
            raise AnnotationError(f"{where}: image_id {image_id} is not in 'images'")
        if "id" in ann:
            ann_id = int(_number(ann["id"], f"{where}.id"))
            if ann_id in seen_ann_ids:
                raise AnnotationError(f"{where}: duplicate annotation id {ann_id}")
            seen_ann_ids.add(ann_id)
        if "category_id" in ann and int(_number(ann["category_id"], where)) != 1:
            continue
        raw = ann.get("keypoints")
        if not raw:
            continue  # PoseTrack21 has box-only persons: no pose target
        if not isinstance(raw, list) or len(raw) != 3 * NUM_KEYPOINTS:
            raise AnnotationError(f"{where}: 'keypoints' must hold {3 * NUM_KEYPOINTS} numbers, got {len(raw) if isinstance(raw, list) else raw!r}")
        kps = np.array([_number(v, f"{where}.keypoints") for v in raw], np.float32).reshape(NUM_KEYPOINTS, 3)
        if fmt == "posetrack21":
            labelled = (kps[:, 2] > 0) | (kps[:, 0] != 0) | (kps[:, 1] != 0)
        else:
            labelled = kps[:, 2] > 0
        kps[:, 2] = labelled.astype(np.float32)
        if not labelled.any():
            continue
        track_id = int(_number(_require(ann, "track_id", where), f"{where}.track_id"))
        if track_id in seen_tracks[image_id]:
            raise AnnotationError(f"{where}: track_id {track_id} appears twice in image {image_id}")
        seen_tracks[image_id].add(track_id)
        box = _xywh_to_xyxy(ann["bbox"], f"{where}.bbox") if ann.get("bbox") else keypoint_box(kps)
        head = _xywh_to_xyxy(ann["bbox_head"], f"{where}.bbox_head") if ann.get("bbox_head") else None
        persons[image_id].append(PersonAnnotation(track_id, kps, box, head))

    def order_key(image_id: int) -> tuple:
        img = by_id[image_id]
        num = _frame_number(str(img["file_name"]))
        return (int(img["frame_id"]) if "frame_id" in img else image_id, num if num is not None else -1)

    ordered = sorted(by_id, key=order_key)
    frames = []
    for image_id in ordered:
        img = by_id[image_id]
        where = f"{path}: image id {image_id}"
        is_labeled = bool(img.get("is_labeled", bool(persons[image_id])))
        regions = _ignore_regions(img.get("ignore_regions_x"), img.get("ignore_regions_y"), where)
        frames.append(FrameRecord(str(img["file_name"]), image_id, is_labeled, tuple(persons[image_id]), regions))
    numbers = [_frame_number(f.file_name) for f in frames]
    if all(n is not None for n in numbers) and len(set(numbers)) != len(numbers):
        raise AnnotationError(f"{path}: two images share the frame number in their file names")
    video_id = vid_ids.pop() if vid_ids else path.stem.split("_")[0]
    return VideoRecord(str(video_id), tuple(frames), str(path), names, fmt)


# ----------------------------------------------------------------------------------------------
# directory reading


def detect_format(path: str | os.PathLike) -> str:
    """'posetrack17' for ``annolist`` files, 'posetrack21' when annotations carry ``person_id``, else 'posetrack18'."""
    data = _load_json(Path(path))
    if isinstance(data, dict) and "annolist" in data:
        return "posetrack17"
    anns = data.get("annotations", []) if isinstance(data, dict) else []
    if anns and isinstance(anns[0], dict) and "person_id" in anns[0]:
        return "posetrack21"
    return "posetrack18"


def read_video(path: str | os.PathLike, image_root: str | os.PathLike | None, fmt: PoseTrackFormat = "auto") -> VideoRecord:
    """Read one annotation file in the given (or detected) format."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "posetrack17":
        if image_root is None:
            raise AnnotationError(f"{path}: PoseTrack2017 files need the image root to list unlabelled frames")
        return read_posetrack17(path, image_root)
    if fmt in ("posetrack18", "posetrack21"):
        return read_posetrack18(path, fmt)
    raise ValueError(f"unknown annotation format {fmt!r}; use posetrack17, posetrack18, posetrack21 or auto")


def read_split(
    annotation_dir: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    fmt: PoseTrackFormat = "auto",
    max_videos: int | None = None,
) -> list[VideoRecord]:
    """Read every ``*.json`` in a directory (one video per file, sorted by name).

    Raises:
        AnnotationError: if the directory holds no json file or any file is malformed.
    """
    annotation_dir = Path(annotation_dir)
    if annotation_dir.is_file():
        files: Sequence[Path] = [annotation_dir]
    else:
        if not annotation_dir.is_dir():
            raise AnnotationError(f"{annotation_dir}: annotation directory not found")
        files = sorted(annotation_dir.glob("*.json"))
    if not files:
        raise AnnotationError(f"{annotation_dir}: no *.json annotation files found")
    if max_videos is not None:
        files = files[:max_videos]
    videos = [read_video(f, image_root, fmt) for f in files]
    logger.info("read %d videos (%d labelled frames) from %s", len(videos),
                sum(len(v.labelled_indices()) for v in videos), annotation_dir)
    return videos
