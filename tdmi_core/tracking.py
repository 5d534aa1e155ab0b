"""IoU tracker: person boxes without ids → stable track ids (Hungarian matching on IoU).

Each frame, current boxes are matched to the tracks' last boxes by maximum total IoU
(``scipy.optimize.linear_sum_assignment`` on ``1 - IoU``); pairs below ``iou_threshold`` are not
matched. Unmatched boxes open new tracks (ids count up from 0 and are never reused until
``reset()``); tracks unmatched for more than ``max_missed_frames`` consecutive frames are dropped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["IouTracker", "Track", "box_iou"]


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU.

    Args:
        boxes_a: ``[N, 4]`` (x1, y1, x2, y2).
        boxes_b: ``[M, 4]``.

    Returns:
        ``[N, M]`` IoU in [0, 1] (0 where the union is empty).
    """
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclass
class Track:
    """One live track: its id, last matched box and score, and frames since the last match."""

    track_id: int
    box_xyxy: np.ndarray
    score: float
    missed_frames: int = 0
    age_frames: int = 1


class IouTracker:
    """Assign track ids to per-frame person boxes.

    Args:
        iou_threshold: minimum IoU between a track's last box and a new box to continue the track.
        max_missed_frames: a track survives this many consecutive frames without a match, then is dropped.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed_frames: int = 5) -> None:
        if not 0.0 <= iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
        if max_missed_frames < 0:
            raise ValueError(f"max_missed_frames must be >= 0, got {max_missed_frames}")
        self.iou_threshold = float(iou_threshold)
        self.max_missed_frames = int(max_missed_frames)
        self._tracks: list[Track] = []
        self._next_id = 0

    @property
    def tracks(self) -> list[Track]:
        """Live tracks (matched this frame or missed for at most ``max_missed_frames`` frames)."""
        return list(self._tracks)

    def reset(self) -> None:
        """Forget all tracks; ids start again from 0."""
        self._tracks = []
        self._next_id = 0

    def update(self, boxes_xyxy: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
        """Match this frame's boxes to tracks.

        Args:
            boxes_xyxy: ``[N, 4]`` person boxes (x1, y1, x2, y2), N may be 0.
            scores: ``[N]`` detection scores (stored on the track), or None for all ones.

        Returns:
            ``track_ids[N]`` int64, one per input box in input order.
        """
        boxes = np.asarray(boxes_xyxy, dtype=np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes_xyxy must have shape [N, 4], got {boxes.shape}")
        if not np.all(np.isfinite(boxes)):
            raise ValueError("boxes_xyxy must be finite")
        n = boxes.shape[0]
        sc = np.ones(n) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        if sc.shape != (n,):
            raise ValueError(f"scores must have shape [N]={n}, got {sc.shape}")

        ids = np.full(n, -1, dtype=np.int64)
        matched_tracks: set[int] = set()
        if self._tracks and n:
            track_boxes = np.stack([t.box_xyxy for t in self._tracks])
            iou = box_iou(boxes, track_boxes)
            rows, cols = linear_sum_assignment(1.0 - iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.iou_threshold and iou[r, c] > 0.0:
                    track = self._tracks[c]
                    track.box_xyxy = boxes[r].copy()
                    track.score = float(sc[r])
                    track.missed_frames = 0
                    track.age_frames += 1
                    ids[r] = track.track_id
                    matched_tracks.add(c)
        survivors: list[Track] = []
        for i, track in enumerate(self._tracks):
            if i not in matched_tracks:
                track.missed_frames += 1
                track.age_frames += 1
                if track.missed_frames > self.max_missed_frames:
                    continue
            survivors.append(track)
        for r in np.flatnonzero(ids < 0):
            track = Track(self._next_id, boxes[r].copy(), float(sc[r]))
            self._next_id += 1
            survivors.append(track)
            ids[r] = track.track_id
        self._tracks = survivors
        return ids
