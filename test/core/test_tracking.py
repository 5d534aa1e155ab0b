"""Tests for tdmi_core.tracking.IouTracker."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tdmi_core.tracking import IouTracker, box_iou


def test_box_iou_known_values() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [3, 3, 3, 3]])
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0, 0.0]])


def test_ids_follow_moving_people_and_new_people_get_new_ids() -> None:
    tracker = IouTracker(iou_threshold=0.3, max_missed_frames=2)
    a, b = np.array([0.0, 0, 50, 100]), np.array([200.0, 0, 250, 100])
    ids0 = tracker.update(np.stack([a, b]), np.array([0.9, 0.8]))
    np.testing.assert_array_equal(ids0, [0, 1])
    # people move 5 px per frame; input order swapped
    for step in range(1, 6):
        ids = tracker.update(np.stack([b + 5 * step, a + 5 * step]), np.array([0.8, 0.9]))
        np.testing.assert_array_equal(ids, [1, 0])
    c = np.array([400.0, 0, 450, 100])
    ids = tracker.update(np.stack([a + 30, c, b + 30]))
    np.testing.assert_array_equal(ids, [0, 2, 1])


def test_missed_frames_keep_then_drop_track() -> None:
    tracker = IouTracker(max_missed_frames=2)
    box = np.array([[0.0, 0, 50, 100]])
    assert tracker.update(box)[0] == 0
    tracker.update(np.zeros((0, 4)))
    tracker.update(np.zeros((0, 4)))
    assert tracker.update(box)[0] == 0  # missed 2 frames: kept
    for _ in range(3):
        tracker.update(np.zeros((0, 4)))
    assert tracker.tracks == []
    assert tracker.update(box)[0] == 1  # missed 3 > 2: a new track, ids not reused
    tracker.reset()
    assert tracker.update(box)[0] == 0


def test_low_iou_starts_a_new_track() -> None:
    tracker = IouTracker(iou_threshold=0.5)
    tracker.update(np.array([[0.0, 0, 10, 10]]))
    assert tracker.update(np.array([[6.0, 0, 16, 10]]))[0] == 1  # IoU 0.25


def test_bad_input_raises() -> None:
    tracker = IouTracker()
    with pytest.raises(ValueError):
        tracker.update(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        tracker.update(np.zeros((2, 4)), np.zeros(3))
    with pytest.raises(ValueError):
        IouTracker(iou_threshold=1.5)


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
)
def test_ids_do_not_depend_on_input_order(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # well separated boxes on a grid, then a small random move and a random permutation
    boxes = np.array([[100.0 * i, 0, 100.0 * i + 60, 120] for i in range(n)])
    tracker = IouTracker()
    first = tracker.update(boxes)
    assert len(set(first.tolist())) == n
    perm = rng.permutation(n)
    moved = boxes[perm] + rng.uniform(-5, 5, size=(n, 4))
    np.testing.assert_array_equal(tracker.update(moved), first[perm])
