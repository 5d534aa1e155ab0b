"""AP arithmetic of the official PoseTrack kits (poseval computeRPC/VOCap/computeMetrics, PoseTrack21 PosemAP)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tdmi_core.eval.ap import (
    group_mean,
    joint_ap,
    mean_ignoring_nan,
    official_argsort,
    official_sum,
    precision_recall,
    rank_descending,
    voc_ap,
)


def test_voc_ap_worked_example() -> None:
    # Ranked labels 0, 1, 1, 0, 0, 1 with 5 GT joints (the right ankle of the fixture):
    #   hits       0    1    2    2    2    3
    #   precision  0   1/2  2/3  1/2  2/5  1/2
    #   recall     0   .2   .4   .4   .4   .6
    # envelope (max to the right): 2/3 2/3 2/3 1/2 1/2 1/2 ; recall steps at ranks 2, 3, 6 and to 1.0 (precision 0)
    # AP = .2 * 2/3 + .2 * 2/3 + .2 * 1/2 + .4 * 0 = 11/30
    scores = np.array([0.95, 0.9, 0.7, 0.5, 0.3, -9999.0])
    labels = np.array([0, 1, 1, 0, 0, 1], dtype=np.int8)
    precision, recall = precision_recall(scores, labels, 5.0)
    np.testing.assert_allclose(precision, [0, 1 / 2, 2 / 3, 1 / 2, 2 / 5, 1 / 2])
    np.testing.assert_allclose(recall, [0, 0.2, 0.4, 0.4, 0.4, 0.6])
    assert voc_ap(recall, precision) == pytest.approx(11 / 30, abs=1e-15)
    assert joint_ap(scores, labels, 5.0) == pytest.approx(100 * 11 / 30, abs=1e-12)


def test_ranking_is_by_score_not_input_order() -> None:
    # the same detections in another order give the same AP: 0.9 (hit) ranks first -> precision 1 at recall .5
    scores = np.array([0.1, 0.9])
    labels = np.array([0, 1])
    # ranked: hit (P 1, R .5), miss (P .5, R .5) -> AP = .5 * 1 = 50
    assert joint_ap(scores, labels, 2.0) == pytest.approx(50.0)
    assert joint_ap(scores[::-1], labels[::-1], 2.0) == pytest.approx(50.0)
    # the opposite scores put the miss first: precision 1/2 at recall .5 -> 25
    assert joint_ap(np.array([0.9, 0.1]), labels, 2.0) == pytest.approx(25.0)


def test_joint_without_gt_poseval_nan_pt21_zero() -> None:
    # poseval: recall = 0 / 0 = NaN -> AP NaN (dropped from the total); PoseTrack21: recall = 0 / max(0, 1) = 0 -> AP 0
    scores = np.array([0.8, 0.4])
    labels = np.array([0, 0])
    assert math.isnan(joint_ap(scores, labels, 0.0, "posetrack18"))
    assert joint_ap(scores, labels, 0.0, "posetrack21") == 0.0


def test_joint_without_any_detection_is_zero_in_both_kits() -> None:
    # computeMetrics only fills AP when there is at least one detection; the default is 0 (not NaN)
    empty = np.zeros(0)
    assert joint_ap(empty, empty, 0.0, "posetrack18") == 0.0
    assert joint_ap(empty, empty, 7.0, "posetrack18") == 0.0
    assert joint_ap(empty, empty, 0.0, "posetrack21") == 0.0


def test_all_hits_give_100_and_unknown_kit_is_rejected() -> None:
    assert joint_ap(np.array([0.3, 0.2]), np.array([1, 1]), 2.0) == 100.0
    with pytest.raises(ValueError, match="posetrack18"):
        joint_ap(np.array([0.3]), np.array([1]), 1.0, "coco")


def test_total_and_groups_follow_poseval_nan_rules() -> None:
    # total: mean over non-NaN joints; group (getCum): a NaN member makes the group NaN
    assert mean_ignoring_nan([10.0, float("nan"), 20.0, 0.0]) == pytest.approx(10.0)
    assert math.isnan(mean_ignoring_nan([float("nan")] * 3))
    assert math.isnan(group_mean([float("nan"), 50.0, 0.0]))
    assert group_mean([50.0, 0.0, 10.0]) == pytest.approx(20.0)


# Golden permutations printed by numpy 1.23.5 (the classic introsort argsort the official numbers were made with).
NUMPY_1_23_ARGSORT = [
    ([0.5, 0.5, 0.9, 0.5, 0.1, 0.5], [4, 0, 1, 3, 5, 2]),
    ([(i * 7) % 3 / 2 for i in range(20)], [0, 15, 12, 18, 6, 9, 3, 4, 7, 10, 13, 1, 16, 19, 8, 11, 2, 14, 17, 5]),
    ([-9999.0] * 20, [0, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 18, 19]),
]


@pytest.mark.parametrize(("values", "expected"), NUMPY_1_23_ARGSORT)
def test_official_argsort_matches_classic_numpy(values: list[float], expected: list[int]) -> None:
    assert official_argsort(np.array(values)).tolist() == expected


def test_official_argsort_sorts() -> None:
    rng = np.random.default_rng(3)
    for n in (0, 1, 17, 300):
        values = rng.integers(0, 4, n).astype(float)
        order = official_argsort(values)
        assert sorted(order.tolist()) == list(range(n))
        assert np.all(np.diff(values[order]) >= 0)


def test_tie_order_changes_ap_and_follows_classic_introsort() -> None:
    # 20 detections, all with the fallback score -9999 (no scores in the file); only detection 0 is a hit.
    # Classic numpy puts index 0 first in ascending order, so reversed (descending) it is ranked LAST:
    # precision at the hit = 1/20, recall 1/1 -> AP = 1/20 = 5 %. A stable descending sort would rank it
    # first (AP 100 %), so the tie order is part of the official result.
    scores = np.full(20, -9999.0)
    labels = np.zeros(20, dtype=np.int8)
    labels[0] = 1
    assert rank_descending(scores, labels)[-1] == 0
    assert joint_ap(scores, labels, 1.0) == pytest.approx(5.0)


def test_rank_fast_path_when_ties_share_labels() -> None:
    # equal scores with equal labels: any order gives the same AP, ranking still highest first
    scores = np.array([0.2, 0.7, 0.7, 0.1])
    labels = np.array([1, 0, 0, 1])
    order = rank_descending(scores, labels)
    assert scores[order].tolist() == [0.7, 0.7, 0.2, 0.1]


def test_official_sum_matches_numpy_1_23() -> None:
    # np.sum printed by numpy 1.23.5 (pairwise sums over 8192-element chunks); numpy 2.4 gives
    # 269384.08375009266 and 9.682251075746638 for the two long vectors (one pass, no chunks)
    x = np.sqrt(np.arange(1, 20001, dtype=np.float64)) / 7
    y = 1.0 / np.arange(1, 9001, dtype=np.float64)
    assert official_sum(x) == 269384.0837500926
    assert official_sum(y) == 9.68225107574664
    assert official_sum(x[:5000]) == 33676.77263394369
    assert official_sum(np.zeros(0)) == 0.0
