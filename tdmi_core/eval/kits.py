"""Each official kit's per-sequence preparation: which frames and joints are evaluated.

``poseval_frames`` follows poseval's ``load_data_dir`` + ``cleanupData`` + ``removeIgnoredPoints`` +
the reading part of ``assignGTmulti``; ``posetrack21_frames`` follows the PoseTrack21 kit's
``get_raw_seq_data`` (labelled frames, ignore regions) and ``PosemAP.eval_sequence``. Both return
``EvalFrame`` arrays in poseval's joint order (``POSETRACK_EVAL_JOINTS``).
"""
from __future__ import annotations

import logging
import os

import numpy as np

from tdmi_core.eval.formats import (
    MAX_TRACK_ID,
    MISSING_SCORE,
    POSETRACK21_JOINT_NAMES,
    AnnoFrame,
    AnnoRect,
    PoseTrackFormatError,
    Pt21Frame,
)
from tdmi_core.eval.matching import EvalFrame
from tdmi_core.eval.regions import points_in_regions
from tdmi_core.skeleton import NUM_POSETRACK_EVAL_JOINTS, POSETRACK_EVAL_JOINTS

logger = logging.getLogger(__name__)

_J = NUM_POSETRACK_EVAL_JOINTS
# column k of a PoseTrack21-order array holds poseval joint _PT21_TO_EVAL[k]; and the inverse
_EVAL_FROM_PT21 = tuple(POSETRACK21_JOINT_NAMES.index(name) for name in POSETRACK_EVAL_JOINTS)
PT21_ORDER_FROM_EVAL = tuple(POSETRACK_EVAL_JOINTS.index(name) for name in POSETRACK21_JOINT_NAMES)


def _check_track_ids(frames: list[AnnoFrame], source: str, unique: bool) -> None:
    """poseval's ``load_data_dir`` asserts: track ids below 10000; unique per frame for predictions."""
    for f, frame in enumerate(frames):
        seen = []
        for r, rect in enumerate(frame.rects):
            if rect.track_id is None:
                continue
            tid = rect.track_id
            if not isinstance(tid, (int, float)) or isinstance(tid, bool) or not tid < MAX_TRACK_ID:
                raise PoseTrackFormatError(
                    f"{source}: frame {f}, person {r}: track_id {tid!r}; poseval needs numbers below {MAX_TRACK_ID}"
                )
            seen.append(tid)
        if unique and len(seen) != len(set(seen)):
            raise PoseTrackFormatError(
                f"{source}: frame {f} ({frame.name}): the same track_id twice in one frame; poseval rejects that. "
                "Give each predicted person of a frame its own track_id"
            )


def _filter_rect_points(rects: list[AnnoRect], regions: tuple[np.ndarray, ...]) -> list[AnnoRect]:
    """poseval ``removeIgnoredPointsRects``: drop points inside a region, then rects left without points."""
    kept = []
    for rect in rects:
        points = rect.points or ()
        if points:
            xy = np.array([[p.x, p.y] for p in points], dtype=np.float64)
            inside = points_in_regions(xy, regions)
            points = tuple(p for p, drop in zip(points, inside) if not drop)
        if points:
            kept.append(AnnoRect(points, rect.head_box_xyxy, rect.track_id))
    return kept


def _joint_arrays(rects: list[AnnoRect], with_scores: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R, J, 2) positions, (R, J) presence and (R, J) scores; the first point with a joint id wins."""
    xy = np.zeros((len(rects), _J, 2), dtype=np.float64)
    has = np.zeros((len(rects), _J), dtype=bool)
    score = np.full((len(rects), _J), np.nan, dtype=np.float64)
    for r, rect in enumerate(rects):
        for point in rect.points or ():
            j = point.joint_id
            if j is None or not 0 <= j < _J or has[r, j]:
                continue
            has[r, j] = True
            xy[r, j] = (point.x, point.y)
            if with_scores:
                score[r, j] = MISSING_SCORE if point.score is None else point.score
    return xy, has, score


def _head_size(rect: AnnoRect) -> float:
    x1, y1, x2, y2 = rect.head_box_xyxy  # type: ignore[misc]
    return float(0.6 * np.linalg.norm(np.subtract([x2, y2], [x1, y1])))


def poseval_frames(gt: list[AnnoFrame], pred: list[AnnoFrame], gt_source: str, pred_source: str) -> list[EvalFrame]:
    """The frames poseval evaluates for one sequence, with their joints (``posetrack18`` kit).

    Rules: frames pair by position (same count needed); a frame is skipped when its GT has no person
    at all (``is_labeled`` is not read); persons without points are dropped; GT ignore regions
    remove GT and predicted points strictly inside them (and persons left without points); a
    predicted joint without a score gets -9999.

    Args:
        gt: GT frames of the sequence.
        pred: prediction frames of the sequence.
        gt_source, pred_source: file names for error messages.

    Returns:
        The evaluated frames, in order.
    """
    if len(pred) != len(gt):
        raise PoseTrackFormatError(
            f"{pred_source}: {len(pred)} prediction frames for {len(gt)} GT frames in {gt_source}; "
            "poseval pairs frames by position, so write one entry per GT image, in GT order"
        )
    for f, (g, p) in enumerate(zip(gt, pred)):
        if g.name is not None and p.name is not None and os.path.basename(g.name) != os.path.basename(p.name):
            raise PoseTrackFormatError(
                f"{pred_source}: frame {f} is {p.name!r} but GT frame {f} is {g.name!r}; poseval pairs frames by "
                "position, so list the prediction images in the GT file's order"
            )
    _check_track_ids(gt, gt_source, unique=False)
    _check_track_ids(pred, pred_source, unique=True)
    frames = []
    for f, (g, p) in enumerate(zip(gt, pred)):
        if len(g.rects) == 0:  # cleanupData: no GT person at all -> frame not evaluated
            continue
        gt_rects = [r for r in g.rects if r.points is not None]
        pr_rects = [r for r in p.rects if r.points is not None]
        if g.ignore_regions:
            pr_rects = _filter_rect_points(pr_rects, g.ignore_regions)
            gt_rects = _filter_rect_points(gt_rects, g.ignore_regions)
        gt_xy, gt_has, _ = _joint_arrays(gt_rects, with_scores=False)
        pr_xy, pr_has, pr_score = _joint_arrays(pr_rects, with_scores=True)
        head = np.full(len(gt_rects), np.nan)
        if pr_rects:
            for r, rect in enumerate(gt_rects):
                if rect.head_box_xyxy is not None:
                    head[r] = _head_size(rect)
                elif gt_has[r].any():
                    raise PoseTrackFormatError(
                        f"{gt_source}: frame {f} ({g.name}), person {r}: annotated person without a head box "
                        "(x1, y1, x2, y2 / bbox_head); PCKh needs it"
                    )
        frames.append(EvalFrame(gt_xy, gt_has, head, pr_xy, pr_has, pr_score))
    return frames


def _check_unique(track_ids: tuple, source: str, t: int) -> None:
    if len(track_ids) != len(set(track_ids)):
        raise PoseTrackFormatError(
            f"{source}: image {t}: the same track_id twice in one labelled frame; the PoseTrack21 kit rejects that"
        )


def _drop_ignored(keypoints: np.ndarray, regions: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    """PoseTrack21 kit: zero joints inside a region; drop persons with every joint inside or all invalid.

    Returns the kept keypoints (N', 15, 3) and the kept person indices.
    """
    n = keypoints.shape[0]
    if n == 0:
        return keypoints, np.zeros(0, dtype=np.int64)
    inside = points_in_regions(keypoints[:, :, :2].reshape(-1, 2), regions).reshape(n, -1)
    kept_rows = []
    kept_idx = []
    for i in range(n):
        if inside[i].all():
            continue
        person = keypoints[i].copy()
        person[inside[i]] = 0
        if np.all((person[:, 0] <= 0) & (person[:, 1] <= 0)):
            continue
        kept_rows.append(person)
        kept_idx.append(i)
    return np.array(kept_rows, dtype=np.float64).reshape(-1, keypoints.shape[1], 3), np.array(kept_idx, dtype=np.int64)


def posetrack21_frames(gt: list[Pt21Frame], pred: list[Pt21Frame], gt_source: str, pred_source: str) -> list[EvalFrame]:
    """The frames the PoseTrack21 kit evaluates for one sequence, with their joints.

    Rules: frames pair by position (the image ids must agree on labelled frames); only frames with
    ``is_labeled`` true are evaluated, with or without persons; a joint exists when x > 0 and y > 0
    (visibility not read); GT ignore regions zero the joints strictly inside them; the per-joint
    score is the prediction's ``scores`` entry.

    Args:
        gt: GT frames of the sequence.
        pred: prediction frames of the sequence.
        gt_source, pred_source: file names for error messages.

    Returns:
        The evaluated frames, in order.
    """
    if len(pred) < len(gt):
        raise PoseTrackFormatError(
            f"{pred_source}: {len(pred)} images for {len(gt)} GT images in {gt_source}; "
            "the PoseTrack21 kit pairs images by position, so list every GT image, in GT order"
        )
    frames = []
    for t, g in enumerate(gt):
        if not g.is_labeled:
            continue
        p = pred[t]
        if p.image_id != g.image_id:
            raise PoseTrackFormatError(
                f"{pred_source}: image {t} has id {p.image_id!r} but GT image {t} has id {g.image_id!r}; "
                "list the prediction images in the GT file's order"
            )
        _check_unique(g.track_ids, gt_source, t)
        _check_unique(p.track_ids, pred_source, t)
        gt_kp, head = g.keypoints, g.head_sizes
        pr_kp = p.keypoints
        if g.ignore_regions:
            pr_kp, _ = _drop_ignored(pr_kp, g.ignore_regions)
            gt_kp, kept = _drop_ignored(gt_kp, g.ignore_regions)
            head = head[kept]
        gt_kp = gt_kp[:, _EVAL_FROM_PT21]
        pr_kp = pr_kp[:, _EVAL_FROM_PT21]
        gt_has = (gt_kp[:, :, 0] > 0) & (gt_kp[:, :, 1] > 0)
        pr_has = (pr_kp[:, :, 0] > 0) & (pr_kp[:, :, 1] > 0)
        if gt_kp.shape[0] == 0:
            # the official kit fails on a labelled frame left without GT persons (head_sizes None, or a 1-D
            # empty array after ignore regions, in _calculate_pckh); the evident intent, kept here: its
            # predictions are false positives
            logger.warning(
                "%s: labelled image %d (id %r) has no GT person; the official PoseTrack21 kit crashes on such a "
                "frame, here its predictions count as false positives", gt_source, t, g.image_id,
            )
        frames.append(EvalFrame(gt_kp[:, :, :2], gt_has, head, pr_kp[:, :, :2], pr_has, pr_kp[:, :, 2].copy()))
    return frames
