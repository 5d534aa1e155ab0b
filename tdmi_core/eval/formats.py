"""PoseTrack json readers (as each official kit reads them) and the PoseTrack18 prediction writer.

Three readers, one per way the official code reads a sequence file:

* ``read_annolist``: the PoseTrack17 "annolist" json (the official conversion of the .mat files),
  read the way poseval's ``eval_helpers`` reads it (one-element lists: ``"x": [12.5]``).
* ``posetrack18_to_annolist``: a PoseTrack18-style json (``images`` / ``annotations`` /
  ``categories``), converted the way poseval's ``convert.convert_videos`` does before evaluating.
* ``read_posetrack21``: a PoseTrack18-style json read the way the PoseTrack21 kit
  (``trackeval/datasets/posetrack.py``) reads it.

The quirks each official path has are kept (they are listed in docs/evaluation.md); input the official
code would crash on raises ``PoseTrackFormatError`` naming the file and the entry, with the fix.
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tdmi_core.skeleton import LIMBS, POSETRACK_EVAL_JOINTS, POSETRACK_KEYPOINT_NAMES

logger = logging.getLogger(__name__)

# PoseTrack's 17 keypoint slots; slots 3 and 4 (ears) are never annotated and never scored.
NUM_POSETRACK_SLOTS = len(POSETRACK_KEYPOINT_NAMES)
POSETRACK21_DROPPED_SLOTS = (3, 4)
# The PoseTrack21 kit's 15-joint order: the 17 slots without the ears.
POSETRACK21_JOINT_NAMES: tuple[str, ...] = tuple(
    name for slot, name in enumerate(POSETRACK_KEYPOINT_NAMES) if slot not in POSETRACK21_DROPPED_SLOTS
)
# Score both kits give a predicted joint that has none.
MISSING_SCORE = -9999.0
# poseval asserts track ids below this (it offsets them per sequence by this much).
MAX_TRACK_ID = 10000


class PoseTrackFormatError(ValueError):
    """A PoseTrack json file does not follow the format the selected official kit reads."""


def _fail(source: str, where: str, problem: str, fix: str) -> PoseTrackFormatError:
    return PoseTrackFormatError(f"{source}: {where}: {problem}. {fix}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any, source: str, where: str) -> float | int:
    if not _is_number(value):
        raise _fail(source, where, f"expected a number, got {value!r}", "Write plain json numbers")
    return value


def _first(value: Any, source: str, where: str) -> Any:
    """poseval reads annolist fields as ``field[0]``."""
    if not isinstance(value, list) or not value:
        raise _fail(
            source, where, f"expected a one-element list like [12.5], got {value!r}",
            "The PoseTrack17 annolist format wraps every scalar in a list",
        )
    return value[0]


def _as_dict(value: Any, source: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(source, where, f"expected a json object, got {type(value).__name__}", "Check the file format")
    return value


def _as_list(value: Any, source: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(source, where, f"expected a json list, got {type(value).__name__}", "Check the file format")
    return value


def load_json(path: str | os.PathLike[str]) -> Any:
    """Read one json file, raising ``PoseTrackFormatError`` naming the file when it is not json."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise PoseTrackFormatError(f"{path}: not valid json ({err})") from err


def detect_format(data: Any, source: str) -> str:
    """``"annolist"`` (PoseTrack17) or ``"posetrack18"`` (images/annotations/categories; also PoseTrack21)."""
    if isinstance(data, Mapping) and "annolist" in data:
        return "annolist"
    if isinstance(data, Mapping) and "images" in data:
        return "posetrack18"
    raise PoseTrackFormatError(
        f"{source}: neither a PoseTrack17 file (key 'annolist') nor a PoseTrack18/21 file (key 'images')"
    )


# --------------------------------------------------------------------------------------------------
# poseval's view: annolist frames


@dataclass(frozen=True)
class AnnoPoint:
    """One keypoint of an annolist person, as poseval reads it.

    ``joint_id`` is poseval's joint index (0..14 are scored, anything else is carried but never
    matched); ``score`` is None when the point has none.
    """

    joint_id: int | None
    x: float
    y: float
    score: float | None


@dataclass(frozen=True)
class AnnoRect:
    """One person ("annorect") of a frame.

    ``points`` is None when the rect has no ``annopoints[0].point`` (poseval drops such rects);
    ``head_box_xyxy`` is the head rectangle (x1, y1, x2, y2) or None.
    """

    points: tuple[AnnoPoint, ...] | None
    head_box_xyxy: tuple[float, float, float, float] | None
    track_id: Any


@dataclass(frozen=True)
class AnnoFrame:
    """One image of a sequence in poseval's annolist form.

    ``ignore_regions`` holds polygons of shape (V, 2); ``name`` is the image file name (None if absent).
    """

    name: str | None
    rects: tuple[AnnoRect, ...]
    ignore_regions: tuple[np.ndarray, ...]


def _annolist_point(point: Any, source: str, where: str) -> AnnoPoint:
    point = _as_dict(point, source, where)
    if "id" not in point:
        raise _fail(source, where, "point without 'id'", "Give each point its joint id as \"id\": [k]")
    raw_id = point["id"]
    joint_id = None if raw_id is None else _first(raw_id, source, f"{where}.id")
    if joint_id is not None and not (isinstance(joint_id, int) and not isinstance(joint_id, bool)):
        raise _fail(source, f"{where}.id", f"joint id {joint_id!r} is not an integer", "Use poseval joint ids 0..14")
    for key in ("x", "y"):
        if key not in point:
            raise _fail(source, where, f"point without '{key}'", "Give each point \"x\": [..], \"y\": [..]")
    x = _number(_first(point["x"], source, f"{where}.x"), source, f"{where}.x")
    y = _number(_first(point["y"], source, f"{where}.y"), source, f"{where}.y")
    score = None
    if "score" in point:
        score = _number(_first(point["score"], source, f"{where}.score"), source, f"{where}.score")
    return AnnoPoint(joint_id, x, y, score)


def _annolist_rect(rect: Any, source: str, where: str) -> AnnoRect:
    rect = _as_dict(rect, source, where)
    points = None
    annopoints = rect.get("annopoints")
    # eval_helpers.rectHasPoints: a non-empty annopoints list whose first entry has a "point" key
    if annopoints is not None and len(annopoints) > 0:
        annopoints = _as_list(annopoints, source, f"{where}.annopoints")
        first = _as_dict(annopoints[0], source, f"{where}.annopoints[0]")
        if len(first) > 0 and "point" in first:
            raw_points = _as_list(first["point"], source, f"{where}.annopoints[0].point")
            points = tuple(
                _annolist_point(p, source, f"{where}.annopoints[0].point[{i}]") for i, p in enumerate(raw_points)
            )
    head = None
    if all(k in rect for k in ("x1", "y1", "x2", "y2")):
        head = tuple(
            float(_number(_first(rect[k], source, f"{where}.{k}"), source, f"{where}.{k}"))
            for k in ("x1", "y1", "x2", "y2")
        )
    track_id = _first(rect["track_id"], source, f"{where}.track_id") if "track_id" in rect else None
    return AnnoRect(points, head, track_id)  # type: ignore[arg-type]


def _annolist_regions(frame: Mapping[str, Any], source: str, where: str) -> tuple[np.ndarray, ...]:
    regions = frame.get("ignore_regions")
    if not regions:
        return ()
    polygons = []
    for r, region in enumerate(_as_list(regions, source, f"{where}.ignore_regions")):
        rw = f"{where}.ignore_regions[{r}]"
        region = _as_dict(region, source, rw)
        vertices = [
            (
                float(_number(_first(p.get("x"), source, f"{rw}.point[{i}].x"), source, f"{rw}.point[{i}].x")),
                float(_number(_first(p.get("y"), source, f"{rw}.point[{i}].y"), source, f"{rw}.point[{i}].y")),
            )
            for i, p in enumerate(_as_list(region.get("point", []), source, f"{rw}.point"))
        ]
        polygons.append(_polygon(vertices, source, rw))
    return tuple(polygons)


def _polygon(vertices: Sequence[tuple[float, float]], source: str, where: str) -> np.ndarray:
    if 0 < len(vertices) < 3:
        raise _fail(
            source, where, f"an ignore region with {len(vertices)} vertices",
            "Ignore regions are polygons with at least 3 vertices (shapely rejects fewer)",
        )
    return np.asarray(vertices, dtype=np.float64).reshape(-1, 2)


def read_annolist(data: Any, source: str) -> list[AnnoFrame]:
    """Parse a PoseTrack17 annolist json (GT or predictions), as poseval reads it.

    Args:
        data: the loaded json object.
        source: file name used in error messages.

    Returns:
        One ``AnnoFrame`` per ``annolist`` entry, in file order.
    """
    data = _as_dict(data, source, "top level")
    frames = []
    for f, frame in enumerate(_as_list(data.get("annolist"), source, "annolist")):
        where = f"annolist[{f}]"
        frame = _as_dict(frame, source, where)
        if "annorect" not in frame:
            raise _fail(source, where, "frame without 'annorect'", "Give every frame an \"annorect\" list (may be [])")
        rects = tuple(
            _annolist_rect(r, source, f"{where}.annorect[{i}]")
            for i, r in enumerate(_as_list(frame["annorect"], source, f"{where}.annorect"))
        )
        name = None
        image = frame.get("image")
        if isinstance(image, list) and image and isinstance(image[0], Mapping):
            name = image[0].get("name") if isinstance(image[0].get("name"), str) else None
        frames.append(AnnoFrame(name, rects, _annolist_regions(frame, source, where)))
    return frames


def _posetrack18_conversion_table(data: Mapping[str, Any], source: str) -> tuple[int | None, ...]:
    """poseval ``Video.from_new``: map each keypoint slot of the file's category to a poseval joint."""
    categories = _as_list(data.get("categories"), source, "categories")
    if len(categories) != 1 or not isinstance(categories[0], Mapping) or categories[0].get("name") != "person":
        raise _fail(
            source, "categories", "poseval needs exactly one category named 'person'",
            "Write \"categories\": [{\"name\": \"person\", \"keypoints\": [...17 names...], ...}]",
        )
    names = _as_list(categories[0].get("keypoints"), source, "categories[0].keypoints")
    if len(names) not in (15, 17):
        raise _fail(source, "categories[0].keypoints", f"{len(names)} keypoint names", "poseval needs 15 or 17")
    table = tuple(POSETRACK_EVAL_JOINTS.index(n) if n in POSETRACK_EVAL_JOINTS else None for n in names)
    missing = [n for i, n in enumerate(POSETRACK_EVAL_JOINTS) if i not in table]
    if missing:
        raise _fail(source, "categories[0].keypoints", f"no slot named {missing}", "Name the PoseTrack keypoints")
    return table


def _video_id(file_name: str) -> str:
    """poseval's sequence id of an image: the first '_' token of its folder name."""
    return os.path.basename(os.path.dirname(file_name)).split("_")[0]


def _images_by_id(data: Mapping[str, Any], source: str) -> list[Mapping[str, Any]]:
    images = _as_list(data.get("images"), source, "images")
    seen: set[Any] = set()
    for i, image in enumerate(images):
        image = _as_dict(image, source, f"images[{i}]")
        if "id" not in image:
            raise _fail(source, f"images[{i}]", "image without 'id'", "Give every image its integer id")
        if image["id"] in seen:
            raise _fail(source, f"images[{i}]", f"image id {image['id']!r} appears twice", "Image ids must be unique")
        seen.add(image["id"])
    return images


def _annotations_by_image(data: Mapping[str, Any], source: str) -> dict[Any, list[tuple[int, Mapping[str, Any]]]]:
    by_image: dict[Any, list[tuple[int, Mapping[str, Any]]]] = {}
    for a, ann in enumerate(_as_list(data.get("annotations", []), source, "annotations")):
        ann = _as_dict(ann, source, f"annotations[{a}]")
        if "image_id" not in ann:
            raise _fail(source, f"annotations[{a}]", "annotation without 'image_id'", "Give each person its image_id")
        by_image.setdefault(ann["image_id"], []).append((a, ann))
    return by_image


def _keypoint_rows(ann: Mapping[str, Any], n_slots: int, source: str, where: str) -> list[list[Any]]:
    keypoints = _as_list(ann.get("keypoints"), source, f"{where}.keypoints")
    if len(keypoints) != 3 * n_slots:
        raise _fail(
            source, f"{where}.keypoints", f"{len(keypoints)} values",
            f"Write {n_slots} keypoints as x, y, v ({3 * n_slots} numbers)",
        )
    for k, value in enumerate(keypoints):
        _number(value, source, f"{where}.keypoints[{k}]")
    return [keypoints[3 * s: 3 * s + 3] for s in range(n_slots)]


def _scores(ann: Mapping[str, Any], n_slots: int, source: str, where: str) -> list[Any] | None:
    scores = ann.get("scores")
    if scores is None:
        return None
    scores = _as_list(scores, source, f"{where}.scores")
    if not scores:
        return None
    if len(scores) != n_slots:
        raise _fail(
            source, f"{where}.scores", f"{len(scores)} scores for {n_slots} keypoints", "Write one score per keypoint"
        )
    for k, value in enumerate(scores):
        _number(value, source, f"{where}.scores[{k}]")
    return scores


def _head_box(ann: Mapping[str, Any], source: str, where: str) -> tuple[float, float, float, float]:
    """``bbox_head`` [x, y, w, h] as (x1, y1, x1 + w, y1 + h), the sums computed as the kits do."""
    box = _as_list(ann["bbox_head"], source, f"{where}.bbox_head")
    if len(box) != 4:
        raise _fail(source, f"{where}.bbox_head", f"{len(box)} values", "Write the head box as [x, y, w, h]")
    x, y, w, h = (_number(v, source, f"{where}.bbox_head") for v in box)
    return (x, y, x + w, y + h)


def _posetrack18_regions(image: Mapping[str, Any], source: str, where: str, strict: bool) -> tuple[np.ndarray, ...]:
    """Ignore regions from ``ignore_regions_x`` / ``ignore_regions_y``.

    poseval pairs the vertex lists with ``zip`` (silently cutting the longer); the PoseTrack21 kit
    indexes ``y`` by the ``x`` positions (``strict``: a shorter ``y`` list is an error there).
    """
    xs_all = _as_list(image["ignore_regions_x"], source, f"{where}.ignore_regions_x")
    ys_all = _as_list(image["ignore_regions_y"], source, f"{where}.ignore_regions_y")
    if strict and len(ys_all) < len(xs_all):
        raise _fail(
            source, where, "fewer ignore_regions_y than ignore_regions_x", "Give both lists one entry per region"
        )
    polygons = []
    for r, (xs, ys) in enumerate(zip(xs_all, ys_all)):
        rw = f"{where}.ignore_regions[{r}]"
        xs = _as_list(xs, source, f"{where}.ignore_regions_x[{r}]")
        ys = _as_list(ys, source, f"{where}.ignore_regions_y[{r}]")
        if strict and len(ys) < len(xs):
            raise _fail(source, rw, "fewer y than x vertices", "Give each region as many y as x values")
        vertices = [(float(_number(x, source, rw)), float(_number(y, source, rw))) for x, y in zip(xs, ys)]
        polygons.append(_polygon(vertices, source, rw))
    return tuple(polygons)


def posetrack18_to_annolist(data: Any, source: str) -> list[AnnoFrame]:
    """Convert a PoseTrack18-style json to annolist frames exactly as poseval's ``convert_videos``.

    The rules kept: slots map to joints by the *names* in ``categories[0].keypoints`` (ears dropped);
    a keypoint is unannotated only when x == 0 and y == 0 and v == 0 (a v == 0 point elsewhere is
    kept); ``scores`` gives the per-joint scores (absent or empty: no scores); ``bbox_head``
    [x, y, w, h] becomes the head rect; only the images of the first sequence folder in the file are
    used, in file order; ``is_labeled`` is not read.

    Args:
        data: the loaded json object.
        source: file name used in error messages.

    Returns:
        One ``AnnoFrame`` per image of the file's first sequence.
    """
    data = _as_dict(data, source, "top level")
    table = _posetrack18_conversion_table(data, source)
    images = _images_by_id(data, source)
    by_image = _annotations_by_image(data, source)
    if not images:
        return []
    for i, image in enumerate(images):
        if not isinstance(image.get("file_name"), str):
            raise _fail(
                source, f"images[{i}]", "image without a 'file_name' string", "poseval groups frames by file_name"
            )
    first_video = _video_id(images[0]["file_name"])
    used = [(i, im) for i, im in enumerate(images) if _video_id(im["file_name"]) == first_video]
    if len(used) != len(images):
        logger.warning(
            "%s: images from %d sequence folders; poseval evaluates only the first (%s), so %d images are skipped",
            source, len({_video_id(im["file_name"]) for im in images}), first_video, len(images) - len(used),
        )
    frames = []
    for i, image in used:
        rects = []
        for a, ann in by_image.get(image["id"], []):
            where = f"annotations[{a}]"
            if "track_id" not in ann:
                raise _fail(
                    source, where, "person without 'track_id'", "poseval's conversion needs a track_id per person"
                )
            rows = _keypoint_rows(ann, len(table), source, where)
            scores = _scores(ann, len(table), source, where)
            points = []
            for slot, joint in enumerate(table):
                if joint is None:
                    continue
                x, y, visible = rows[slot]
                if x == 0 and y == 0 and visible == 0:  # convert.Person.to_old: unannotated
                    continue
                points.append(AnnoPoint(joint, x, y, None if scores is None else scores[slot]))
            head = _head_box(ann, source, where) if "bbox_head" in ann else None
            rects.append(AnnoRect(tuple(points), head, ann["track_id"]))
        regions: tuple[np.ndarray, ...] = ()
        if "ignore_regions_x" in image and "ignore_regions_y" in image:
            regions = _posetrack18_regions(image, source, f"images[{i}]", strict=False)
        frames.append(AnnoFrame(image["file_name"], tuple(rects), regions))
    return frames


def read_poseval_frames(path: str | os.PathLike[str]) -> list[AnnoFrame]:
    """Read one sequence file in either format into poseval's annolist frames."""
    source = str(path)
    data = load_json(path)
    if detect_format(data, source) == "annolist":
        return read_annolist(data, source)
    return posetrack18_to_annolist(data, source)


# --------------------------------------------------------------------------------------------------
# The PoseTrack21 kit's view


@dataclass(frozen=True)
class Pt21Frame:
    """One image as the PoseTrack21 kit reads it.

    Attributes:
        image_id: the image's ``id``.
        is_labeled: GT only (False for predictions).
        keypoints: (N, 15, 3) float64 in ``POSETRACK21_JOINT_NAMES`` order; column 2 is the
            visibility for GT and the per-joint score for predictions.
        track_ids: (N,) the persons' ``track_id``.
        head_sizes: (N,) GT head sizes (0.6 * head box diagonal); empty for predictions.
        ignore_regions: GT polygons, each (V, 2).
    """

    image_id: Any
    is_labeled: bool
    keypoints: np.ndarray
    track_ids: tuple[Any, ...]
    head_sizes: np.ndarray
    ignore_regions: tuple[np.ndarray, ...]


def read_posetrack21(data: Any, source: str, is_gt: bool) -> list[Pt21Frame]:
    """Read a PoseTrack18-style json exactly as the PoseTrack21 kit's ``_load_raw_file``.

    The rules kept: fixed slot positions (slots 3, 4 deleted, names not read); GT images must carry
    ``is_labeled`` and ``ignore_regions_x/y``, GT persons ``bbox_head``; missing ``scores`` give every
    joint -9999; a prediction's keypoint column 2 is replaced by its scores *inside the numpy array
    of the frame*, so when every keypoint value of the frame's persons is a json integer the array
    is integer and the scores are truncated toward zero (as the kit does).

    Args:
        data: the loaded json object.
        source: file name used in error messages.
        is_gt: GT file (True) or prediction file (False).

    Returns:
        One ``Pt21Frame`` per image, in file order.
    """
    data = _as_dict(data, source, "top level")
    images = _images_by_id(data, source)
    by_image = _annotations_by_image(data, source)
    image_ids = {im["id"] for im in images}
    for image_id, anns in by_image.items():
        if image_id not in image_ids:
            raise _fail(
                source, f"annotations[{anns[0][0]}]", f"image_id {image_id!r} is not an image of this file",
                "Every annotation must belong to an image listed in 'images'",
            )
    frames = []
    for i, image in enumerate(images):
        where = f"images[{i}]"
        regions: tuple[np.ndarray, ...] = ()
        is_labeled = False
        if is_gt:
            for key in ("is_labeled", "ignore_regions_x", "ignore_regions_y"):
                if key not in image:
                    raise _fail(
                        source, where, f"GT image without '{key}'", "The PoseTrack21 kit needs it on every GT image"
                    )
            is_labeled = bool(image["is_labeled"])
            regions = _posetrack18_regions(image, source, where, strict=True)
        anns = by_image.get(image["id"], [])
        rows, scores, track_ids, head_sizes = [], [], [], []
        for a, ann in anns:
            aw = f"annotations[{a}]"
            if "track_id" not in ann:
                raise _fail(source, aw, "person without 'track_id'", "The PoseTrack21 kit needs a track_id per person")
            track_id = ann["track_id"]
            if not (isinstance(track_id, int) and not isinstance(track_id, bool)):
                raise _fail(source, f"{aw}.track_id", f"{track_id!r} is not an integer", "Use integer track ids")
            track_ids.append(track_id)
            _keypoint_rows(ann, NUM_POSETRACK_SLOTS, source, aw)
            rows.append(ann["keypoints"])
            ann_scores = ann.get("scores")
            if "scores" not in ann:
                ann_scores = [MISSING_SCORE] * NUM_POSETRACK_SLOTS
            else:
                ann_scores = _as_list(ann_scores, source, f"{aw}.scores")
                if len(ann_scores) != NUM_POSETRACK_SLOTS:
                    raise _fail(source, f"{aw}.scores", f"{len(ann_scores)} scores", "Write 17 scores, one per slot")
                for k, value in enumerate(ann_scores):
                    _number(value, source, f"{aw}.scores[{k}]")
            scores.append(ann_scores)
            if is_gt:
                if "bbox_head" not in ann:
                    raise _fail(
                        source, aw, "GT person without 'bbox_head'", "The PoseTrack21 kit needs a head box per person"
                    )
                x1, y1, x2, y2 = _head_box(ann, source, aw)
                head_sizes.append(0.6 * np.linalg.norm(np.subtract([x2, y2], [x1, y1])))
        # as the kit: one array per frame, so json integers everywhere give an integer array
        keypoints = np.delete(np.array(rows).reshape([-1, NUM_POSETRACK_SLOTS, 3]), POSETRACK21_DROPPED_SLOTS, axis=1)
        score_array = np.delete(np.array(scores).reshape([-1, NUM_POSETRACK_SLOTS]), POSETRACK21_DROPPED_SLOTS, axis=1)
        if not is_gt:
            keypoints[:, :, 2] = score_array
        frames.append(
            Pt21Frame(
                image["id"], is_labeled, keypoints.astype(np.float64), tuple(track_ids),
                np.asarray(head_sizes, dtype=np.float64), regions,
            )
        )
    return frames


# --------------------------------------------------------------------------------------------------
# Writer


@dataclass(frozen=True)
class PosePrediction:
    """One predicted person for the PoseTrack18 prediction writer.

    Attributes:
        image_id: ``id`` of the image in the GT file.
        keypoints: (17, 3) x, y in image pixels and the joint score, in PoseTrack slot order
            (``POSETRACK_KEYPOINT_NAMES``; the ear slots are written but never scored).
        score: the person's score.
        track_id: integer in [0, 10000), unique within the image (both kits reject duplicates).
    """

    image_id: int
    keypoints: np.ndarray
    score: float
    track_id: int


def posetrack18_prediction_json(
    images: Sequence[Mapping[str, Any]], predictions: Sequence[PosePrediction]
) -> dict[str, Any]:
    """Build a prediction json object in the official PoseTrack18 format.

    Args:
        images: the GT file's ``images`` (each with ``id`` and ``file_name``), in GT order: both kits
            pair prediction and GT frames by position, so every GT image must be listed, in order.
        predictions: the predicted persons.

    Returns:
        ``{"images", "annotations", "categories"}``; each annotation has ``keypoints`` (51 floats,
        the third of each triple being the joint score), ``scores`` (17), ``score``, ``track_id``.
    """
    out_images = []
    ids = set()
    for i, image in enumerate(images):
        if "id" not in image or "file_name" not in image:
            raise ValueError(f"images[{i}] needs 'id' and 'file_name' (pass the GT file's images)")
        if image["id"] in ids:
            raise ValueError(f"images[{i}]: image id {image['id']!r} appears twice")
        ids.add(image["id"])
        out_images.append({"id": image["id"], "file_name": image["file_name"]})
    annotations = []
    tracks_seen: set[tuple[Any, int]] = set()
    for p, pred in enumerate(predictions):
        if pred.image_id not in ids:
            raise ValueError(f"prediction {p}: image_id {pred.image_id!r} is not one of the given images")
        keypoints = np.asarray(pred.keypoints, dtype=np.float64)
        if keypoints.shape != (NUM_POSETRACK_SLOTS, 3):
            raise ValueError(f"prediction {p}: keypoints of shape {keypoints.shape}, expected (17, 3)")
        if not np.all(np.isfinite(keypoints)) or not math.isfinite(pred.score):
            raise ValueError(f"prediction {p}: keypoints and score must be finite")
        is_int = isinstance(pred.track_id, (int, np.integer)) and not isinstance(pred.track_id, bool)
        track_id = int(pred.track_id) if is_int else -1
        if not 0 <= track_id < MAX_TRACK_ID:
            raise ValueError(f"prediction {p}: track_id {pred.track_id!r} must be an integer in [0, {MAX_TRACK_ID})")
        if (pred.image_id, track_id) in tracks_seen:
            raise ValueError(f"prediction {p}: track_id {track_id} twice in image {pred.image_id!r}")
        tracks_seen.add((pred.image_id, track_id))
        annotations.append(
            {
                "image_id": pred.image_id,
                "id": len(annotations),
                "category_id": 1,
                "track_id": track_id,
                # floats, never ints: the PoseTrack21 kit truncates scores in an all-integer frame
                "keypoints": [float(v) for v in keypoints.reshape(-1)],
                "scores": [float(v) for v in keypoints[:, 2]],
                "score": float(pred.score),
            }
        )
    category = {
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(POSETRACK_KEYPOINT_NAMES),
        # the PoseTrack18 files' limb list is COCO's, 1-based
        "skeleton": [[a + 1, b + 1] for a, b in LIMBS],
    }
    return {"images": out_images, "annotations": annotations, "categories": [category]}


def write_posetrack18_predictions(
    path: str | os.PathLike[str], images: Sequence[Mapping[str, Any]], predictions: Sequence[PosePrediction]
) -> Path:
    """Write one sequence's predictions as an official PoseTrack18 json file (see ``posetrack18_prediction_json``).

    Name the file like the GT file of the sequence: the evaluation pairs files by name.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = posetrack18_prediction_json(images, predictions)
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(payload, handle)
    return out


__all__ = [
    "AnnoFrame",
    "AnnoPoint",
    "AnnoRect",
    "MISSING_SCORE",
    "POSETRACK21_JOINT_NAMES",
    "PosePrediction",
    "PoseTrackFormatError",
    "Pt21Frame",
    "detect_format",
    "load_json",
    "posetrack18_prediction_json",
    "posetrack18_to_annolist",
    "read_annolist",
    "read_posetrack21",
    "read_poseval_frames",
    "write_posetrack18_predictions",
]
