"""Per-frame PCKh matching as poseval's assignGTmulti (not a Hungarian assignment)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from tdmi_core.eval.matching import EvalFrame, accumulate, assign_predictions, frame_detections, normalized_distances

J = 15


def _pose(offset_x: float, n: int = J) -> np.ndarray:
    """(J, 2) joints on a line 40 px apart, shifted by offset_x."""
    xy = np.zeros((J, 2))
    xy[:, 0] = np.arange(J) * 40.0 + offset_x
    xy[:, 1] = 100.0
    return xy


def _frame(gt: list[np.ndarray], pred: list[np.ndarray], head: float = 30.0, gt_has=None, pred_has=None, scores=None):
    g = np.array(gt).reshape(-1, J, 2)
    p = np.array(pred).reshape(-1, J, 2)
    gh = np.ones(g.shape[:2], bool) if gt_has is None else np.asarray(gt_has)
    ph = np.ones(p.shape[:2], bool) if pred_has is None else np.asarray(pred_has)
    sc = np.full(p.shape[:2], 0.5) if scores is None else np.asarray(scores, dtype=float)
    return EvalFrame(g, gh, np.full(len(g), head), p, ph, sc)


def test_pckh_threshold_is_inclusive_at_half_head_size() -> None:
    # head box 30 x 40 -> diagonal 50 -> head size 0.6 * 50 = 30 px -> a hit needs distance <= 15 px.
    # offset (9, 12) is exactly 15 px (0.5: hit), (12, 16) is 20 px (0.667: miss)
    gt = np.zeros((1, J, 2))
    pred = np.zeros((1, J, 2))
    pred[0, 0] = (9, 12)
    pred[0, 1] = (12, 16)
    dist = normalized_distances(gt, np.ones((1, J), bool), np.array([30.0]), pred, np.ones((1, J), bool))
    assert dist[0, 0, 0] == 0.5
    assert dist[0, 0, 1] == pytest.approx(20 / 30)
    _, hits = assign_predictions(dist, np.ones((1, J), bool))
    assert hits[0, 0, 0] and not hits[0, 0, 1] and hits[0, 0, 2]


def test_missing_joints_never_hit_and_zero_head_size_never_hits() -> None:
    gt_has = np.ones((1, J), bool)
    gt_has[0, 3] = False
    zeros, all_pred = np.zeros((1, J, 2)), np.ones((1, J), bool)
    dist = normalized_distances(zeros, gt_has, np.array([30.0]), zeros, all_pred)
    assert np.isinf(dist[0, 0, 3]) and dist[0, 0, 0] == 0
    with np.errstate(all="ignore"):
        dist0 = normalized_distances(zeros, gt_has, np.array([0.0]), np.ones((1, J, 2)), all_pred)
    _, hits = assign_predictions(dist0, gt_has)
    assert not hits.any()  # d / 0 = inf (and 0 / 0 = nan) are never <= 0.5


def test_greedy_assignment_differs_from_hungarian() -> None:
    # GT A at x0 = 0; GT B = A shifted 10 px except 3 joints moved 100 px away.
    # P1 = A: PCKh vs A 15/15 = 1.0, vs B 12/15 = 0.8.  P2 = A shifted -6 px on 14 joints (one missing):
    # vs A 14/15, vs B 0 (16 px away).  poseval: every prediction keeps its best GT (both keep A), then A
    # takes the best of them (P1, 1.0 > 0.93); B's column is all zero -> no match; P2 is unmatched and all
    # its joints are false positives. A Hungarian assignment would give P1 -> B, P2 -> A (0.8 + 0.93 > 1.0).
    a = _pose(0.0)
    b = _pose(10.0)
    b[[0, 1, 2], 0] += 90.0
    p1 = a.copy()
    p2 = _pose(-6.0)
    p2_has = np.ones((1, J), bool)
    p2_has[0, 14] = False
    frame = _frame([a, b], [p1, p2], pred_has=np.vstack([np.ones((1, J), bool), p2_has]))
    labels, gt_of_pred = frame_detections(frame)
    assert gt_of_pred.tolist() == [0, -1]
    assert labels[0].all() and not labels[1].any()

    dist = normalized_distances(frame.gt_xy, frame.gt_has, frame.head_size, frame.pred_xy, frame.pred_has)
    pck = (dist <= 0.5).sum(axis=2) / frame.gt_has.sum(axis=1)
    np.testing.assert_allclose(pck, [[1.0, 0.8], [14 / 15, 0.0]])
    rows, cols = linear_sum_assignment(-pck)
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 1, 1: 0}  # what the official code does NOT do


def test_ties_go_to_the_first_index() -> None:
    # two identical predictions of one GT: argmax takes the first, the second is a false positive
    a = _pose(0.0)
    labels, gt_of_pred = frame_detections(_frame([a], [a, a]))
    assert gt_of_pred.tolist() == [0, -1]
    assert labels[0].all() and not labels[1].any()


def test_gt_without_joints_matches_nothing() -> None:
    # a GT person with no annotated joint has PCKh 0 with everyone: predictions near it are false positives
    a = _pose(0.0)
    labels, gt_of_pred = frame_detections(_frame([a], [a], gt_has=np.zeros((1, J), bool)))
    assert gt_of_pred.tolist() == [-1] and not labels.any()


def test_matched_prediction_misses_count_as_false_positives() -> None:
    # P matched to A, but its joint 5 is 20 px off (miss): label 0 for that joint, 1 for the others
    a = _pose(0.0)
    p = a.copy()
    p[5] += (12, 16)
    labels, gt_of_pred = frame_detections(_frame([a], [p]))
    assert gt_of_pred.tolist() == [0]
    assert labels[0, 5] == 0 and labels[0].sum() == J - 1


def test_accumulate_orders_by_frame_then_person_and_counts_gt() -> None:
    a = _pose(0.0)
    f1 = _frame([a], [a, _pose(2000.0)], scores=np.array([[0.9] * J, [0.8] * J]))
    f2 = _frame([a, _pose(1000.0)], [], scores=np.zeros((0, J)))
    scores, labels, n_gt = accumulate([f1, f2])
    assert scores[0].tolist() == [0.9, 0.8] and labels[0].tolist() == [1, 0]
    assert n_gt.tolist() == [3.0] * J
