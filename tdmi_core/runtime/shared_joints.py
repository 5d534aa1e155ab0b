"""Shared-joint suppression: one image point cannot be the same joint of two people.

A top-down model sees every person in its crop. Where two people overlap (one box inside the
other), the crop of one can lock some joints onto the other person: both skeletons then put, say,
their nose on the same face. Like OKS-NMS in the top-down pipelines (HRNet, mmpose) but per joint:
when the same joint of two people of a frame lies closer than ``max_distance`` × the smaller box
height, the less confident of the two is set to score 0 (unknown) instead of being published at a
point that belongs to someone else. Callers count what was suppressed.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tdmi_core.runtime.types import PersonPose

__all__ = ["suppress_shared_joints"]


def suppress_shared_joints(poses: Sequence[PersonPose], max_distance: float) -> tuple[list[PersonPose], int]:
    """Zero the weaker of two people's same joint where they coincide; returns ``(poses, joints zeroed)``.

    Args:
        poses: the people of one frame (keypoints in image pixels, ``[17, 3]`` with scores).
        max_distance: coincidence radius as a fraction of the smaller of the two box heights; 0 disables.

    Returns:
        New :class:`PersonPose` objects for the people that changed (pose score = the new mean), the
        others as given, in the same order; and the number of joints set to score 0.
    """
    if max_distance <= 0 or len(poses) < 2:
        return list(poses), 0
    keypoints = np.stack([p.keypoints for p in poses]).astype(np.float32)  # [N, K, 3]
    heights = np.array([max(float(p.box_xyxy[3] - p.box_xyxy[1]), 1.0) for p in poses])
    xy, score = keypoints[..., :2], keypoints[..., 2]
    distance = np.linalg.norm(xy[:, None] - xy[None], axis=-1)  # [N, N, K]
    radius = max_distance * np.minimum(heights[:, None], heights[None])[..., None]
    both = (score[:, None] > 0) & (score[None] > 0)
    n = len(poses)
    upper = np.triu(np.ones((n, n), bool), k=1)[..., None]
    shared = (distance < radius) & both & upper  # [N, N, K], each pair once (a < b)
    if not shared.any():
        return list(poses), 0
    # the weaker of each coinciding pair loses the joint (ties: the later person)
    loses_a = shared & (score[:, None] < score[None])
    loses_b = shared & ~(score[:, None] < score[None])
    zeroed = loses_a.any(axis=1) | loses_b.any(axis=0)  # [N, K]
    out = []
    for i, pose in enumerate(poses):
        if not zeroed[i].any():
            out.append(pose)
            continue
        kps = pose.keypoints.copy()
        kps[zeroed[i], 2] = 0.0
        out.append(dataclasses.replace(pose, keypoints=kps, score=float(kps[:, 2].mean())))
    return out, int(zeroed.sum())
