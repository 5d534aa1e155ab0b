"""Score-weighted DLT triangulation of undistorted points, with a robust drop-a-view step.

``triangulate`` is pose2sim's ``weighted_triangulation`` on points undistorted into the same ``K``
(pose2sim uses OpenCV's optimal new camera matrix instead): each view adds the rows
``w·(x·P₃ − P₁)`` and ``w·(y·P₃ − P₂)`` of the pixel projection matrix ``P = K[R|t]``, ``w`` its score;
the point is the SVD null vector. The rows are built in normalised coordinates and scaled by fx, fy,
which is the same algebra (``P₁ − x·P₃ = fx·(r₁ − xₙ·r₃)`` for zero skew) and better conditioned.

Robust rule (``robust_triangulate``): while a point has at least 3 views and one of them reprojects
more than ``max_error_px`` away, one view is dropped and the point re-triangulated; so at least 2
views always remain. The view dropped is the one whose removal leaves the smallest worst error in
the others (pose2sim likewise tries camera subsets), not the one with the largest error: an outlier
among three views can pull the fit so that a good view shows the largest residual. Fewer than 2
views with positive weight give NaN.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tdmi_core.eval.multiview.camera import Camera, project, undistort_points

# ~1.5x the file calibration's median 4-view residual of confident joints on the demo rig (12-13 px),
# and a small fraction of a person's height there (~800 px): drops swapped or lost joints, not noise.
DEFAULT_MAX_ERROR_PX = 20.0


def view_weights(keypoints: np.ndarray, min_score: float) -> np.ndarray:
    """Triangulation weights of ``[..., 3]`` keypoints: the score where finite and ≥ ``min_score``, else 0."""
    score = keypoints[..., 2]
    usable = np.isfinite(keypoints).all(axis=-1) & (score >= min_score)
    return np.where(usable, score, 0.0)


def triangulate(uv: np.ndarray, weights: np.ndarray, cameras: Sequence[Camera]) -> np.ndarray:
    """Weighted DLT of distorted pixels ``[N, C, 2]`` with weights ``[N, C]`` → points ``[N, 3]``."""
    used = weights > 0
    xn = np.stack([undistort_points(uv[:, c], camera) for c, camera in enumerate(cameras)], axis=1)
    xn = np.where(used[..., None], xn, 0.0)  # unused views are zero rows; keep NaN out of the SVD
    rows = []
    for c, camera in enumerate(cameras):
        P = np.hstack([camera.R, camera.t[:, None]])
        w = np.where(used[:, c], weights[:, c], 0.0)[:, None]
        rows.append(w * camera.K[0, 0] * (xn[:, c, 0:1] * P[2] - P[0]))
        rows.append(w * camera.K[1, 1] * (xn[:, c, 1:2] * P[2] - P[1]))
    A = np.stack(rows, axis=1)
    homogeneous = np.linalg.svd(A)[2][:, -1, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        points = homogeneous[:, :3] / homogeneous[:, 3:4]
    points[used.sum(axis=1) < 2] = np.nan
    return points


def reprojection_errors(points: np.ndarray, uv: np.ndarray, cameras: Sequence[Camera]) -> np.ndarray:
    """Pixel distance ``[N, C]`` between points ``[N, 3]`` projected with distortion and pixels ``[N, C, 2]``."""
    projected = np.stack([project(points, camera) for camera in cameras], axis=1)
    return np.linalg.norm(projected - uv, axis=-1)


def _worst_error(points: np.ndarray, uv: np.ndarray, weights: np.ndarray, cameras: Sequence[Camera]) -> np.ndarray:
    """Largest reprojection error over each point's used views ``[N]`` (∞ if behind a used camera)."""
    errors = np.where(weights > 0, reprojection_errors(points, uv, cameras), -np.inf)
    return np.nan_to_num(errors, nan=np.inf).max(axis=1)


def robust_triangulate(
    uv: np.ndarray,
    weights: np.ndarray,
    cameras: Sequence[Camera],
    max_error_px: float = DEFAULT_MAX_ERROR_PX,
) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate distorted pixels ``[N, C, 2]``, dropping views by the robust rule (module docstring).

    Returns the points ``[N, 3]`` and the views kept ``[N, C]``.
    """
    weights = np.where(weights > 0, weights, 0.0)
    points = triangulate(uv, weights, cameras)
    while True:
        used = weights > 0
        pending = np.flatnonzero((used.sum(axis=1) >= 3) & (_worst_error(points, uv, weights, cameras) > max_error_px))
        if len(pending) == 0:
            return points, used
        # worst error left in the other views when each view in turn is left out
        left = np.full((len(pending), len(cameras)), np.inf)
        for view in range(len(cameras)):
            without = weights[pending].copy()
            without[:, view] = 0.0
            trial = triangulate(uv[pending], without, cameras)
            left[:, view] = np.where(used[pending, view], _worst_error(trial, uv[pending], without, cameras), np.inf)
        weights[pending, np.argmin(left, axis=1)] = 0.0
        points[pending] = triangulate(uv[pending], weights[pending], cameras)
