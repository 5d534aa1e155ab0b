"""Person-detection files in the DCPose family's format (the boxes the TDMI papers evaluate with).

The file is one json list, one entry per box::

    [{"image_name": "images/val/000342_mpii_test/000000.jpg", "category_id": 1,
      "bbox": [x, y, w, h], "score": 0.98, "nframes": 100, "frame_id": 10003420000}, ...]

``image_name`` is relative to the same image root as the annotation ``file_name`` fields; ``nframes``
and ``frame_id`` are optional here (our windows take the frame list from the annotation file).
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tdmi_core.data.posetrack import AnnotationError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameDetections:
    """Boxes of one frame: ``boxes_xyxy[N, 4]`` float32 pixels, ``scores[N]`` float32."""

    boxes_xyxy: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def normalise_image_name(name: str) -> str:
    """Canonical key for an image path: forward slashes, no leading './'."""
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def read_detections(
    path: str | os.PathLike, score_threshold: float = 0.0, category_id: int = 1
) -> dict[str, FrameDetections]:
    """Read a DCPose-format detection file into ``{image_name: FrameDetections}``.

    Args:
        path: The json file.
        score_threshold: Boxes scoring below it are dropped (DCPose's ``IMAGE_THRE``).
        category_id: Only entries of this category are kept (1 = person).

    Raises:
        AnnotationError: naming the file and the entry when it is malformed.
    """
    path = Path(path)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            entries = json.load(handle)
    except FileNotFoundError as e:
        raise AnnotationError(f"{path}: detection file not found") from e
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: not valid json ({e})") from e
    if not isinstance(entries, list):
        raise AnnotationError(f"{path}: expected a json list of detections, got {type(entries).__name__}")

    boxes: dict[str, list[list[float]]] = defaultdict(list)
    scores: dict[str, list[float]] = defaultdict(list)
    for i, det in enumerate(entries):
        where = f"{path}: entry {i}"
        if not isinstance(det, dict):
            raise AnnotationError(f"{where}: expected an object, got {type(det).__name__}")
        for key in ("image_name", "bbox", "score"):
            if key not in det:
                raise AnnotationError(f"{where}: missing required key '{key}'")
        if int(det.get("category_id", category_id)) != category_id:
            continue
        bbox = det["bbox"]
        try:
            x, y, w, h = (float(v) for v in bbox)
            score = float(det["score"])
        except (TypeError, ValueError) as e:
            raise AnnotationError(f"{where}: bbox must be [x, y, w, h] numbers and score a number, got {bbox!r}, {det['score']!r}") from e
        if not all(math.isfinite(v) for v in (x, y, w, h, score)) or w < 0 or h < 0:
            raise AnnotationError(f"{where}: invalid box {bbox!r} / score {det['score']!r} (non-finite or negative size)")
        if score < score_threshold:
            continue
        name = normalise_image_name(str(det["image_name"]))
        boxes[name].append([x, y, x + w, y + h])
        scores[name].append(score)
    out = {
        name: FrameDetections(np.asarray(boxes[name], np.float32).reshape(-1, 4), np.asarray(scores[name], np.float32))
        for name in boxes
    }
    logger.info("read %d boxes on %d images from %s", sum(len(d) for d in out.values()), len(out), path)
    return out
