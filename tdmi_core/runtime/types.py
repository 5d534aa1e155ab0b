"""Plain data passed in and out of the runtime (no torch, no ROS)."""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["TrackedBox", "PersonPose", "FramePoses", "StreamFrame"]


@dataclass(frozen=True)
class TrackedBox:
    """One tracked person box in one frame.

    Attributes:
        track_id: stable id of the person across frames (e.g. from :class:`tdmi_core.tracking.IouTracker`).
        box_xyxy: ``[4]`` float (x1, y1, x2, y2) in source-image pixels.
        score: detection score.
    """

    track_id: int
    box_xyxy: np.ndarray
    score: float = 1.0

    def __post_init__(self) -> None:
        box = np.asarray(self.box_xyxy, dtype=np.float64).reshape(-1)
        if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] < box[0] or box[3] < box[1]:
            raise ValueError(
                f"TrackedBox {self.track_id}: box_xyxy must be 4 finite numbers (x1, y1, x2, y2) with x2 >= x1 "
                f"and y2 >= y1, got {np.asarray(self.box_xyxy).tolist()}"
            )
        object.__setattr__(self, "box_xyxy", box)
        object.__setattr__(self, "track_id", int(self.track_id))
        object.__setattr__(self, "score", float(self.score))


@dataclass(frozen=True)
class PersonPose:
    """Pose of one tracked person in one frame.

    Attributes:
        track_id: the person's track id.
        box_xyxy: ``[4]`` the detection box of this frame (source-image pixels).
        box_score: the detection score.
        keypoints: ``[17, 3]`` float32 (x_px, y_px, score) in source-image pixels, COCO-17 order.
        score: pose score, the mean keypoint score.
    """

    track_id: int
    box_xyxy: np.ndarray
    box_score: float
    keypoints: np.ndarray
    score: float


@dataclass(frozen=True)
class FramePoses:
    """All poses of one frame, with the caller's token for that frame.

    Attributes:
        token: whatever the caller passed to ``push`` with this frame (the ROS node passes the header).
        poses: one :class:`PersonPose` per person tracked in the frame (may be empty).
        frame_index: 0-based index of the frame since the last ``reset``/``flush``.
        image_bgr: the frame's image as pushed (for overlays; not copied).
        suppressed_joints: joints set to score 0 because another person's same joint coincided
            (:mod:`~tdmi_core.runtime.shared_joints`).
    """

    token: Any
    poses: list[PersonPose] = field(default_factory=list)
    frame_index: int = -1
    image_bgr: np.ndarray | None = None
    suppressed_joints: int = 0


@dataclass(frozen=True)
class StreamFrame:
    """One frame of one stream (camera), for a batched step over several streams.

    Attributes:
        stream: the stream's key (e.g. the camera's index); each stream has its own frames and tracks.
        image_bgr: ``[H, W, 3]`` uint8 BGR image.
        tracks: the tracked person boxes of this frame (ids unique within the stream's frame).
        token: returned with this frame's :class:`FramePoses`.
    """

    stream: Hashable
    image_bgr: np.ndarray
    tracks: Sequence[TrackedBox]
    token: Any = None
