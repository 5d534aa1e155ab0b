"""Per-sample multi-view metrics on a method's ``[F, P, C, K, 3]`` keypoint arrays.

Leave-one-view-out (LOVO) error of joint k of person p in frame f and held-out camera c: the joint is
triangulated from the method's own 2D joints in the other cameras (views with score ≥ ``min_score``;
robust drop-the-worst-view step, see ``triangulation``), projected with distortion into camera c, and
compared with the method's 2D joint there, in pixels. It counts only where

- at least 2 other views have score ≥ ``min_score`` (so the point exists; the robust step keeps ≥ 2),
- the held-out joint is present: finite and score > ``present_min_score`` (0: any reported joint
  counts, however unsure — a method cannot leave out its hard joints by lowering their scores).

A point that its other views put behind camera c, or whose projection lands outside the image, is a
failure of those views, not a reason to skip the sample: it counts, the former with the image
diagonal as its error, the latter with its real pixel distance. (Otherwise a method with
incoherent views, e.g. a blind template, would lose samples instead of scoring badly.)

Jitter of joint k at frame t: ``‖x(t+1) − 2·x(t) + x(t−1)‖`` in camera c, for frames t−1, t, t+1 that
are consecutive frame indices with the joint present in all three.

Both are later divided by one person height per (frame, person, camera) shared by all methods (see
``shared_heights``), so ratios rank methods as pixels do.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tdmi_core.eval.multiview.camera import Camera, project
from tdmi_core.eval.multiview.triangulation import DEFAULT_MAX_ERROR_PX, robust_triangulate, view_weights


@dataclass(frozen=True)
class MetricConfig:
    """Thresholds of the metric.

    Attributes:
        min_score: a view is used to triangulate where its joint's score is at least this
            (pose2sim's default likelihood threshold).
        present_min_score: a held-out or jitter joint counts where its score is above this.
        max_error_px: the robust step's reprojection error threshold.
    """

    min_score: float = 0.3
    present_min_score: float = 0.0
    max_error_px: float = DEFAULT_MAX_ERROR_PX


def present(keypoints: np.ndarray, present_min_score: float) -> np.ndarray:
    """Joints ``[..., 3]`` that count as reported: finite and score above the threshold."""
    return np.isfinite(keypoints).all(axis=-1) & (keypoints[..., 2] > present_min_score)


def lovo_errors(keypoints: np.ndarray, cameras: Sequence[Camera], config: MetricConfig) -> np.ndarray:
    """LOVO error in pixels ``[F, P, C, K]`` of ``[F, P, C, K, 3]`` keypoints; NaN where it does not count."""
    F, P, C, K, _ = keypoints.shape
    errors = np.full((F, P, C, K), np.nan)
    by_view = np.moveaxis(keypoints, 2, 3).reshape(-1, C, 3)  # [F·P·K, C, 3]
    for held_out, camera in enumerate(cameras):
        others = [c for c in range(C) if c != held_out]
        points, _ = robust_triangulate(
            by_view[:, others, :2],
            view_weights(by_view[:, others], config.min_score),
            [cameras[c] for c in others],
            config.max_error_px,
        )
        projected = project(points, camera)
        target = by_view[:, held_out]
        diagonal = float(np.hypot(*camera.size))
        distance = np.linalg.norm(projected - target[:, :2], axis=-1)
        distance = np.where(np.isfinite(distance), distance, diagonal)  # behind camera c
        counts = np.isfinite(points).all(axis=-1) & present(target, config.present_min_score)
        error = np.where(counts, distance, np.nan)
        errors[:, :, held_out] = error.reshape(F, P, K)
    return errors


def jitter(keypoints: np.ndarray, frames: np.ndarray, present_min_score: float) -> np.ndarray:
    """Acceleration norm in pixels ``[F, P, C, K]`` at each middle frame; NaN where it does not count."""
    values = np.full(keypoints.shape[:-1], np.nan)
    if len(frames) < 3:
        return values
    xy = np.where(present(keypoints, present_min_score)[..., None], keypoints[..., :2], np.nan)
    acceleration = np.linalg.norm(xy[2:] - 2 * xy[1:-1] + xy[:-2], axis=-1)
    consecutive = (frames[2:] - frames[1:-1] == 1) & (frames[1:-1] - frames[:-2] == 1)
    values[1:-1] = np.where(consecutive[:, None, None, None], acceleration, np.nan)
    return values


def shared_heights(boxes: Sequence[np.ndarray]) -> np.ndarray:
    """Person height in pixels ``[F, P, C]``: the median over methods of their box heights ``[F, P, C, 4]``.

    One height per (frame, person, camera) for every method: a method's own box would let a looser box
    lower its normalised error.
    """
    heights = np.stack([b[..., 3] - b[..., 1] for b in boxes])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN where no method saw the person
        return np.nanmedian(np.where(heights > 0, heights, np.nan), axis=0)
