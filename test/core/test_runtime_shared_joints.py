"""Shared-joint suppression: the weaker of two people's coinciding same joint is set to score 0."""
import numpy as np
import pytest

from tdmi_core.runtime.shared_joints import suppress_shared_joints
from tdmi_core.runtime.types import PersonPose


def _pose(track_id: int, box, xy, scores) -> PersonPose:
    kps = np.concatenate([np.asarray(xy, np.float32), np.asarray(scores, np.float32)[:, None]], axis=1)
    return PersonPose(track_id=track_id, box_xyxy=np.asarray(box, np.float64), box_score=0.9,
                      keypoints=kps, score=float(kps[:, 2].mean()))


def _standing(x0: float, y0: float, height: float) -> np.ndarray:
    """17 distinct points spread over a person of ``height`` px at (x0, y0)."""
    return np.stack([x0 + 0.2 * height * np.sin(np.arange(17)), y0 + height * np.arange(17) / 17], axis=1)


def test_apart_people_are_untouched():
    a = _pose(0, [0, 0, 100, 200], _standing(50, 0, 200), np.full(17, 0.9))
    b = _pose(1, [300, 0, 400, 200], _standing(350, 0, 200), np.full(17, 0.8))
    out, n = suppress_shared_joints([a, b], 0.1)
    assert n == 0 and out[0] is a and out[1] is b


def test_coinciding_joints_go_to_the_more_confident_person():
    woman = _standing(500, 100, 400)
    man = _standing(300, 50, 800)
    man[:5] = woman[:5] + 3.0  # the man's head joints locked onto the woman's face
    man_scores = np.full(17, 0.9)
    man_scores[:5] = 0.6
    woman_scores = np.full(17, 0.92)
    woman_scores[3] = 0.5  # one joint where the man's is the more confident
    man_pose = _pose(0, [100, 0, 700, 900], man, man_scores)
    woman_pose = _pose(1, [420, 80, 620, 500], woman, woman_scores)
    (m, w), n = suppress_shared_joints([man_pose, woman_pose], 0.1)
    assert n == 5
    np.testing.assert_array_equal(m.keypoints[:, 2] == 0, (np.arange(17) < 5) & (np.arange(17) != 3))
    assert w.keypoints[3, 2] == 0 and (w.keypoints[np.arange(17) != 3, 2] > 0).all()
    np.testing.assert_array_equal(m.keypoints[:, :2], man_pose.keypoints[:, :2])  # positions unchanged
    assert m.score == pytest.approx(m.keypoints[:, 2].mean())
    assert man_pose.keypoints[0, 2] == pytest.approx(0.6)  # inputs are not modified


def test_radius_scales_with_the_smaller_box_and_zero_disables():
    a = _pose(0, [0, 0, 100, 1000], _standing(50, 0, 1000), np.full(17, 0.9))
    xy = a.keypoints[:, :2] + 500.0  # another person's joints, far away ...
    xy[0] = a.keypoints[0, :2] + [15.0, 0.0]  # ... but one 15 px off: inside 0.1 x 200 px, outside 0.1 x 100 px
    big = _pose(1, [0, 0, 100, 200], xy, np.full(17, 0.5))
    small = _pose(1, [0, 0, 100, 100], xy, np.full(17, 0.5))
    assert suppress_shared_joints([a, big], 0.1)[1] == 1
    assert suppress_shared_joints([a, small], 0.1)[1] == 0
    assert suppress_shared_joints([a, big], 0.0)[1] == 0
