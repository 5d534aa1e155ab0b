"""A method's 2D predictions on synchronised cameras: the data format, JSON files and array views.

In memory, ``Predictions`` maps camera name → frame index → list of ``Detection`` (track id from
that camera's tracker, box ``x1, y1, x2, y2`` and keypoints ``[K, 3]`` as ``x, y, score``), all in
the original, distorted image pixels. A missing joint is NaN (``null`` in JSON) or has score 0.

On disk (``save_predictions`` / ``load_predictions``)::

    {"format": "tdmi-multiview-predictions/1",
     "cameras": {"cam01": {"0": [{"track_id": 3, "box": [x1, y1, x2, y2],
                                  "keypoints": [[x, y, score], ...]}, ...], ...}, ...}}
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

PREDICTIONS_FORMAT = "tdmi-multiview-predictions/1"


class Detection(NamedTuple):
    """One person in one frame of one camera."""

    track_id: int
    box: np.ndarray
    keypoints: np.ndarray


Predictions = Mapping[str, Mapping[int, Sequence[Detection]]]


@dataclass(frozen=True)
class Track:
    """One camera's track: the frames it covers (sorted) with its boxes ``[n, 4]`` and keypoints ``[n, K, 3]``."""

    frames: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray


@dataclass(frozen=True)
class PoseArrays:
    """A method's people as arrays over frames × people × cameras (NaN / -1 where absent).

    Attributes:
        frames: frame index of each row ``[F]``.
        keypoints: ``[F, P, C, K, 3]`` (x, y, score).
        boxes: ``[F, P, C, 4]``.
        track_ids: ``[F, P, C]`` the camera's track id, -1 where absent.
    """

    frames: np.ndarray
    keypoints: np.ndarray
    boxes: np.ndarray
    track_ids: np.ndarray


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def save_predictions(predictions: Predictions, path: str | Path) -> None:
    """Write predictions as JSON (format in the module docstring)."""
    cameras = {
        camera: {
            str(frame): [
                {
                    "track_id": int(det.track_id),
                    "box": [float(v) for v in det.box],
                    "keypoints": [[_finite_or_none(float(v)) for v in joint] for joint in det.keypoints],
                }
                for det in detections
            ]
            for frame, detections in sorted(frames.items())
        }
        for camera, frames in predictions.items()
    }
    Path(path).write_text(json.dumps({"format": PREDICTIONS_FORMAT, "cameras": cameras}))


def load_predictions(path: str | Path) -> dict[str, dict[int, list[Detection]]]:
    """Read predictions written by ``save_predictions``."""
    data = json.loads(Path(path).read_text())
    if data.get("format") != PREDICTIONS_FORMAT:
        raise ValueError(f"{path}: not a {PREDICTIONS_FORMAT} file")
    return {
        camera: {
            int(frame): [
                Detection(
                    track_id=int(det["track_id"]),
                    box=np.asarray(det["box"], dtype=float),
                    keypoints=np.asarray(det["keypoints"], dtype=float),  # null → NaN
                )
                for det in detections
            ]
            for frame, detections in frames.items()
        }
        for camera, frames in data["cameras"].items()
    }


def num_joints(predictions: Predictions) -> int:
    """K, checked to be the same for every detection."""
    shapes = {det.keypoints.shape for frames in predictions.values() for dets in frames.values() for det in dets}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2 or next(iter(shapes))[1] != 3:
        raise ValueError(f"keypoints must all have one shape [K, 3]; found {sorted(shapes)}")
    return next(iter(shapes))[0]


def _track(rows: list[tuple[int, Detection]]) -> Track:
    rows = sorted(rows, key=lambda row: row[0])
    return Track(
        frames=np.array([frame for frame, _ in rows]),
        boxes=np.array([np.asarray(det.box, dtype=float) for _, det in rows]),
        keypoints=np.array([np.asarray(det.keypoints, dtype=float) for _, det in rows]),
    )


def tracks_by_camera(predictions: Predictions) -> dict[str, dict[int, Track]]:
    """Group each camera's detections into tracks; a track id twice in one frame is an error."""
    grouped: dict[str, dict[int, Track]] = {}
    for camera, frames in predictions.items():
        rows: dict[int, list[tuple[int, Detection]]] = {}
        for frame, detections in frames.items():
            ids = [det.track_id for det in detections]
            if len(set(ids)) != len(ids):
                raise ValueError(f"camera {camera} frame {frame}: a track id appears twice: {ids}")
            for det in detections:
                rows.setdefault(int(det.track_id), []).append((int(frame), det))
        grouped[camera] = {track_id: _track(track_rows) for track_id, track_rows in rows.items()}
    return grouped


def to_arrays(
    tracks: Mapping[str, Mapping[int, Track]],
    people: Mapping[tuple[str, int], int],
    camera_names: Sequence[str],
    frames: np.ndarray,
    num_people: int,
    joints: int,
) -> PoseArrays:
    """Lay out the tracks assigned to people (``(camera, track_id) → person``) on the given (sorted) frames."""
    F, P, C = len(frames), num_people, len(camera_names)
    keypoints = np.full((F, P, C, joints, 3), np.nan)
    boxes = np.full((F, P, C, 4), np.nan)
    track_ids = np.full((F, P, C), -1)
    for (camera, track_id), person in people.items():
        c = camera_names.index(camera)
        track = tracks[camera][track_id]
        rows = np.searchsorted(frames, track.frames)
        inside = (rows < F) & (frames[np.minimum(rows, F - 1)] == track.frames)
        keypoints[rows[inside], person, c] = track.keypoints[inside]
        boxes[rows[inside], person, c] = track.boxes[inside]
        track_ids[rows[inside], person, c] = track_id
    return PoseArrays(frames=frames, keypoints=keypoints, boxes=boxes, track_ids=track_ids)
