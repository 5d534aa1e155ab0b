"""Per-frame PCKh matching of predicted to ground-truth poses, as poseval's ``assignGTmulti``.

poseval does *not* use a Hungarian assignment for AP (only its tracking metric does). Per frame:

1. distance of each predicted joint to each GT joint, divided by the GT head size; a joint is a
   hit when that normalised distance is <= 0.5 (PCKh@0.5);
2. ``pck[p, g]`` = hits of prediction p on GT g / number of annotated joints of g;
3. each prediction keeps only its best GT (first on ties, ``argmax``), then each GT takes the
   prediction with the highest remaining pck (first on ties); a GT whose best value is 0 takes none.

A prediction is matched when some GT took it; its joints are labelled with the hits on that GT,
every other prediction's joints are false positives. The PoseTrack21 kit does the same.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tdmi_core.skeleton import NUM_POSETRACK_EVAL_JOINTS

# PCKh threshold of both kits (fraction of the head size).
PCKH_THRESHOLD = 0.5


@dataclass(frozen=True)
class EvalFrame:
    """One evaluated frame, after each kit's reading and filtering, in poseval joint order (J = 15).

    Attributes:
        gt_xy: (G, J, 2) GT joint positions (pixels).
        gt_has: (G, J) bool, joint annotated.
        head_size: (G,) GT head sizes (pixels); only read where a distance is needed.
        pred_xy: (P, J, 2) predicted joint positions (pixels).
        pred_has: (P, J) bool, joint predicted.
        pred_score: (P, J) per-joint scores used for ranking.
    """

    gt_xy: np.ndarray
    gt_has: np.ndarray
    head_size: np.ndarray
    pred_xy: np.ndarray
    pred_has: np.ndarray
    pred_score: np.ndarray


def normalized_distances(
    gt_xy: np.ndarray, gt_has: np.ndarray, head_size: np.ndarray, pred_xy: np.ndarray, pred_has: np.ndarray
) -> np.ndarray:
    """Joint distances divided by the GT head size.

    Args:
        gt_xy: (G, J, 2); gt_has: (G, J); head_size: (G,); pred_xy: (P, J, 2); pred_has: (P, J).

    Returns:
        (P, G, J) float64; inf where the joint is missing on either side. A zero head size gives
        inf (or nan for a zero distance), which never counts as a hit, as in poseval.
    """
    diff = gt_xy[None, :, :, :].astype(np.float64) - pred_xy[:, None, :, :].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.sqrt(diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1]) / np.asarray(
            head_size, dtype=np.float64
        )[None, :, None]
    both = pred_has[:, None, :] & gt_has[None, :, :]
    return np.where(both, dist, np.inf)


def assign_predictions(
    dist: np.ndarray, gt_has: np.ndarray, threshold: float = PCKH_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """poseval's per-frame assignment of predictions to GT poses.

    Args:
        dist: (P, G, J) normalised distances (``normalized_distances``).
        gt_has: (G, J) annotated GT joints.
        threshold: PCKh threshold.

    Returns:
        gt_of_pred: (P,) int, the GT index each prediction is matched to, -1 if none.
        hits: (P, G, J) bool, ``dist <= threshold``.
    """
    n_pred, n_gt = dist.shape[:2]
    hits = dist <= threshold
    gt_of_pred = np.full(n_pred, -1, dtype=np.int64)
    if n_pred == 0 or n_gt == 0:
        return gt_of_pred, hits
    n_annotated = np.sum(gt_has, axis=1)
    pck = 1.0 * np.sum(hits, axis=2)
    has_joints = n_annotated > 0
    pck[:, has_joints] = pck[:, has_joints] / n_annotated[has_joints]
    best_gt = np.argmax(pck, axis=1)
    kept = np.zeros_like(pck)
    rows = np.arange(n_pred)
    kept[rows, best_gt] = pck[rows, best_gt]
    pred_of_gt = np.argmax(kept, axis=0)
    pred_of_gt[np.max(kept, axis=0) == 0] = -1
    for g, p in enumerate(pred_of_gt):
        if p >= 0:
            gt_of_pred[p] = g  # each prediction keeps one non-zero column, so at most one GT takes it
    return gt_of_pred, hits


def frame_detections(frame: EvalFrame, threshold: float = PCKH_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Label every predicted joint of a frame as hit (1) or false positive (0).

    Args:
        frame: the frame.
        threshold: PCKh threshold.

    Returns:
        labels: (P, J) bool, meaningful where ``frame.pred_has``.
        gt_of_pred: (P,) matched GT index or -1.
    """
    n_pred, n_joints = frame.pred_has.shape
    labels = np.zeros((n_pred, n_joints), dtype=bool)
    if n_pred == 0 or frame.gt_has.shape[0] == 0:
        return labels, np.full(n_pred, -1, dtype=np.int64)
    dist = normalized_distances(frame.gt_xy, frame.gt_has, frame.head_size, frame.pred_xy, frame.pred_has)
    gt_of_pred, hits = assign_predictions(dist, frame.gt_has, threshold)
    matched = np.flatnonzero(gt_of_pred >= 0)
    labels[matched] = hits[matched, gt_of_pred[matched]]
    return labels, gt_of_pred


def accumulate(
    frames: list[EvalFrame], threshold: float = PCKH_THRESHOLD, n_joints: int = NUM_POSETRACK_EVAL_JOINTS
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Scores and labels of all predicted joints, per joint, in poseval's order (frame, then person).

    Args:
        frames: evaluated frames, in sequence-file order then frame order.
        threshold: PCKh threshold.
        n_joints: J.

    Returns:
        scores: J arrays of float64 scores.
        labels: J arrays of int8 labels (1 hit, 0 false positive).
        n_gt: (J,) float64 number of annotated GT joints.
    """
    score_parts: list[list[np.ndarray]] = [[] for _ in range(n_joints)]
    label_parts: list[list[np.ndarray]] = [[] for _ in range(n_joints)]
    n_gt = np.zeros(n_joints, dtype=np.float64)
    for frame in frames:
        labels, _ = frame_detections(frame, threshold)
        for j in range(n_joints):
            has = frame.pred_has[:, j]
            score_parts[j].append(frame.pred_score[has, j].astype(np.float64))
            label_parts[j].append(labels[has, j].astype(np.int8))
        n_gt += np.sum(frame.gt_has, axis=0)
    scores = [np.concatenate(p) if p else np.zeros(0) for p in score_parts]
    labels_out = [np.concatenate(p) if p else np.zeros(0, dtype=np.int8) for p in label_parts]
    return scores, labels_out, n_gt
