"""Box-normalised PCK: the quick metric of training validation and distillation (the official mAP is ``posetrack``).

PCK@thr normalised by the person box (mmpose's ``bbox`` normalisation): a labelled joint is correct
when its prediction lies within ``thr * max(box_w, box_h)`` of the ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PCKCounts:
    """Correct and labelled joint counts, per joint (``[K]``), summable across batches and processes."""

    correct: np.ndarray
    total: np.ndarray

    def __add__(self, other: "PCKCounts") -> "PCKCounts":
        return PCKCounts(self.correct + other.correct, self.total + other.total)

    @property
    def pck(self) -> float:
        """Mean over all labelled joints (NaN when there are none)."""
        total = float(self.total.sum())
        return float(self.correct.sum()) / total if total > 0 else float("nan")

    def per_joint(self) -> np.ndarray:
        """``[K]`` PCK per joint (NaN where a joint is never labelled)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.total > 0, self.correct / np.maximum(self.total, 1), np.nan)


def box_normalised_pck_counts(
    pred_xy: np.ndarray,
    gt_xy: np.ndarray,
    labelled: np.ndarray,
    boxes_xyxy: np.ndarray,
    threshold: float = 0.2,
) -> PCKCounts:
    """Count PCK hits.

    Args:
        pred_xy: ``[N, K, 2]`` predicted joints in image pixels.
        gt_xy: ``[N, K, 2]`` ground-truth joints in image pixels.
        labelled: ``[N, K]`` bool (or > 0) mask of labelled joints.
        boxes_xyxy: ``[N, 4]`` person boxes (the normaliser is the longer box side).
        threshold: Fraction of the box size (0.2 for PCK@0.2).

    Returns:
        :class:`PCKCounts` with ``[K]`` correct / total counts. Persons whose box has zero size are skipped.
    """
    pred = np.asarray(pred_xy, np.float64)
    gt = np.asarray(gt_xy, np.float64)
    mask = np.asarray(labelled) > 0
    boxes = np.asarray(boxes_xyxy, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred_xy and gt_xy must both be [N, K, 2], got {pred.shape} and {gt.shape}")
    if mask.shape != pred.shape[:2] or boxes.shape != (pred.shape[0], 4):
        raise ValueError(f"labelled must be [N, K] and boxes [N, 4]; got {mask.shape} and {boxes.shape} for N, K = {pred.shape[:2]}")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])  # [N]
    valid = mask & (size[:, None] > 0)
    dist = np.linalg.norm(pred - gt, axis=-1) / np.where(size > 0, size, 1.0)[:, None]  # [N, K]
    hits = valid & (dist <= threshold)  # NaN predictions never hit
    return PCKCounts(hits.sum(axis=0).astype(np.float64), valid.sum(axis=0).astype(np.float64))


def box_normalised_pck(pred_xy, gt_xy, labelled, boxes_xyxy, threshold: float = 0.2) -> float:
    """PCK@threshold over all labelled joints (see :func:`box_normalised_pck_counts`)."""
    return box_normalised_pck_counts(pred_xy, gt_xy, labelled, boxes_xyxy, threshold).pck
