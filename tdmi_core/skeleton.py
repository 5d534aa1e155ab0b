"""COCO-17 skeleton constants, the one place they live.

Joint order is COCO's (and our ``tdmi_msgs/Skeleton2D`` index constants). PoseTrack
annotations use 17 slots in the same order but leave the two ears empty and put
``head_bottom`` / ``head_top`` in the eye slots' neighbours; ``POSETRACK_EVAL_JOINTS``
names the 15 joints poseval scores.
"""
from __future__ import annotations

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_KEYPOINTS: int = len(KEYPOINT_NAMES)
KEYPOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# Left/right pairs swapped by a horizontal flip.
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))


def flip_permutation() -> list[int]:
    """Index permutation that maps joint order after a horizontal flip back to COCO order."""
    perm = list(range(NUM_KEYPOINTS))
    for left, right in FLIP_PAIRS:
        perm[left], perm[right] = right, left
    return perm


# Limbs drawn for visualisation (RViz markers, overlays), by joint name.
LIMBS_BY_NAME: tuple[tuple[str, str], ...] = (
    ("left_ankle", "left_knee"),
    ("left_knee", "left_hip"),
    ("right_ankle", "right_knee"),
    ("right_knee", "right_hip"),
    ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
    ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"),
    ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_elbow", "right_wrist"),
    ("left_eye", "right_eye"),
    ("nose", "left_eye"),
    ("nose", "right_eye"),
    ("left_eye", "left_ear"),
    ("right_eye", "right_ear"),
    ("left_ear", "left_shoulder"),
    ("right_ear", "right_shoulder"),
)
LIMBS: tuple[tuple[int, int], ...] = tuple((KEYPOINT_INDEX[a], KEYPOINT_INDEX[b]) for a, b in LIMBS_BY_NAME)

# PoseTrack 2017 (official json conversion) / 2018 / 21 keypoint names, in their 17-slot order.
# Slots 3 and 4 (COCO's ears) are unannotated in PoseTrack; slot 1 is head_bottom and 2 head_top.
POSETRACK_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "head_bottom",
    "head_top",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# The 15 joints poseval scores, in poseval's own index order (``eval_helpers.Joint``). poseval prints
# index 12 as "neck"; it is the PoseTrack ``head_bottom`` keypoint, so it keeps that name here.
POSETRACK_EVAL_JOINTS: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "head_bottom",
    "nose",
    "head_top",
)
NUM_POSETRACK_EVAL_JOINTS: int = len(POSETRACK_EVAL_JOINTS)

# For each of the 17 PoseTrack slots, the index of that joint in POSETRACK_EVAL_JOINTS (None for the
# two unannotated ear slots, which no PoseTrack evaluation scores).
POSETRACK_SLOT_TO_EVAL_JOINT: tuple[int | None, ...] = tuple(
    POSETRACK_EVAL_JOINTS.index(name) if name in POSETRACK_EVAL_JOINTS else None
    for name in POSETRACK_KEYPOINT_NAMES
)

# poseval's result columns (eval_helpers.getCum): each group's AP is the mean over its joints, in this order.
POSETRACK_EVAL_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Head", ("head_top", "head_bottom", "nose")),
    ("Shou", ("right_shoulder", "left_shoulder")),
    ("Elb", ("right_elbow", "left_elbow")),
    ("Wri", ("right_wrist", "left_wrist")),
    ("Hip", ("right_hip", "left_hip")),
    ("Knee", ("right_knee", "left_knee")),
    ("Ankl", ("right_ankle", "left_ankle")),
)
