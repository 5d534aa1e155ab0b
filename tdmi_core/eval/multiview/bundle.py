"""Calibration refinement by bundle adjustment on confident joints pooled from several methods.

Parameters: every camera's principal point (optionally its focal lengths) and the extrinsics
(Rodrigues vector, translation) of every camera but the first, plus one 3D point per confident
(method, frame, person, joint). Distortion stays as read. Residuals are distorted-pixel reprojection
errors under a robust loss (soft-L1, quadratic up to ``f_scale_px``), so swapped or lost joints
weigh little. Gauge: the first camera's pose fixes rotation and translation; scale, the one freedom
left, is set afterwards by scaling the rig about the first camera's centre so its mean baseline
(mean distance between camera centres) equals the one read.

A principal point shift is nearly the same image motion as a small turn of the camera (Δc ≈ f·Δθ;
they differ only by ~θ·x² towards the image edge), so from joints near the image centre a principal
point is weakly determined: on the tests' synthetic rig (like the demo's), 3 px joint noise leaves
an 18 px principal point error in place, absorbed by a ~0.6° turn, at the residual of the true rig.
A weak prior (the value read, ± ``principal_point_sigma_px``, weighted like one observation at
``f_scale_px``) keeps the solution from drifting along that valley and the solver fast; ``inf``
turns it off, and exact joints then recover the principal points. Projections, which the metric
uses, are right either way: read the principal point shifts in the report as a camera model fit,
not as lens facts.

A point enters where its joint has score ≥ ``min_score`` in ≥ ``min_views`` cameras, observed in
all those views and started at its robust triangulation; frames are thinned evenly to at most
``max_points`` points. Each method keeps its own points: methods define joints differently (e.g.
hips), so one method's point is not another's. At least two methods are required so the
calibration is never fitted to the very method it then scores.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix
from scipy.spatial.transform import Rotation

from tdmi_core.eval.multiview.camera import Camera, distort
from tdmi_core.eval.multiview.triangulation import (
    DEFAULT_MAX_ERROR_PX,
    reprojection_errors,
    robust_triangulate,
    triangulate,
    view_weights,
)

logger = logging.getLogger(__name__)

# Per camera: Rodrigues vector (3), translation (3), cx, cy, fx, fy.
_ROT, _TRANS, _PRINCIPAL, _FOCAL = slice(0, 3), slice(3, 6), slice(6, 8), slice(8, 10)
_CAMERA_PARAMS = 10


@dataclass(frozen=True)
class RefinementReport:
    """What the bundle adjustment did.

    Attributes:
        methods: the methods whose joints were pooled.
        points: 3D points adjusted.
        observations: 2D observations of them.
        residual_before_px: median reprojection residual of joints confident in every camera (all
            frames of the pooled methods, triangulated from all cameras), with the calibration read.
        residual_after_px: the same with the refined calibration.
        principal_point_shift_px: per camera, refined minus read (cx, cy).
        focal_shift_px: per camera, refined minus read (fx, fy).
        rotation_change_deg: per camera, angle of the rotation between read and refined orientation.
        centre_shift_m: per camera, distance between read and refined centres.
        seconds: time taken.
    """

    methods: list[str]
    points: int
    observations: int
    residual_before_px: float
    residual_after_px: float
    principal_point_shift_px: dict[str, list[float]]
    focal_shift_px: dict[str, list[float]]
    rotation_change_deg: dict[str, float]
    centre_shift_m: dict[str, float]
    seconds: float


def all_view_residual(cameras: Sequence[Camera], keypoint_sets: Sequence[np.ndarray], min_score: float) -> float:
    """Median residual (px) over views of joints with score ≥ ``min_score`` in every camera, pooled."""
    residuals = []
    for keypoints in keypoint_sets:
        by_view = np.moveaxis(keypoints, 2, 3).reshape(-1, len(cameras), 3)
        weights = view_weights(by_view, min_score)
        confident = by_view[(weights > 0).all(axis=1)]
        points = triangulate(confident[..., :2], view_weights(confident, min_score), cameras)
        residuals.append(reprojection_errors(points, confident[..., :2], cameras).ravel())
    pooled = np.concatenate(residuals)
    return float(np.nanmedian(pooled)) if pooled.size else np.nan


def _observations(
    cameras: Sequence[Camera], keypoint_sets: Sequence[np.ndarray], min_score: float, min_views: int, max_points: int,
    max_error_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Initial points ``[N, 3]`` and observations: camera index, point index, pixel ``[M, 2]``."""
    C = len(cameras)
    by_frame = [np.moveaxis(k, 2, 3).reshape(k.shape[0], -1, C, 3) for k in keypoint_sets]  # [F, P·K, C, 3]
    confident = [(view_weights(k, min_score) > 0).sum(axis=-1) >= min_views for k in by_frame]
    total = sum(int(c.sum()) for c in confident)
    stride = max(1, -(-total // max_points))
    uv, weights = [], []
    for keypoints, keep in zip(by_frame, confident):
        keypoints, keep = keypoints[::stride], keep[::stride]
        uv.append(keypoints[keep][..., :2])
        weights.append(view_weights(keypoints[keep], min_score))
    uv_all, weights_all = np.concatenate(uv), np.concatenate(weights)
    points, _ = robust_triangulate(uv_all, weights_all, cameras, max_error_px)
    # every confident view is observed, also those the robust step left out of the starting point: with a
    # poor starting calibration that step drops good views, and fitting without them biases the fit
    point_index, camera_index = np.nonzero(weights_all > 0)
    return points, camera_index, point_index, uv_all[point_index, camera_index]


def _camera_params(cameras: Sequence[Camera]) -> np.ndarray:
    params = np.zeros((len(cameras), _CAMERA_PARAMS))
    for c, camera in enumerate(cameras):
        params[c, _ROT] = Rotation.from_matrix(camera.R).as_rotvec()
        params[c, _TRANS] = camera.t
        params[c, _PRINCIPAL] = camera.K[0, 2], camera.K[1, 2]
        params[c, _FOCAL] = camera.K[0, 0], camera.K[1, 1]
    return params


def _free_mask(n_cameras: int, refine_focal: bool) -> np.ndarray:
    free = np.zeros((n_cameras, _CAMERA_PARAMS), bool)
    free[:, _PRINCIPAL] = True
    free[1:, _ROT] = True  # the first camera's pose is the gauge
    free[1:, _TRANS] = True
    free[:, _FOCAL] = refine_focal
    return free


def _project(params: np.ndarray, dist: np.ndarray, points: np.ndarray, camera_index: np.ndarray) -> np.ndarray:
    """Distorted pixels of ``points[i]`` in camera ``camera_index[i]`` under per-camera ``params``."""
    rotations = Rotation.from_rotvec(params[:, _ROT]).as_matrix()
    xc = np.einsum("nij,nj->ni", rotations[camera_index], points) + params[camera_index, _TRANS]
    xd = distort(xc[:, :2] / xc[:, 2:3], dist[camera_index])
    return xd * params[camera_index, _FOCAL] + params[camera_index, _PRINCIPAL]


def _jacobian_sparsity(
    free: np.ndarray, camera_index: np.ndarray, point_index: np.ndarray, n_points: int
) -> coo_matrix:
    """Which unknowns each residual depends on: an observation on its camera's free parameters and its
    point; the principal point prior (last 2 rows per camera) on that principal point."""
    column = np.full(free.shape, -1)
    column[free] = np.arange(free.sum())
    n_free, n_obs = int(free.sum()), len(camera_index)
    columns = np.concatenate([column[camera_index], n_free + 3 * point_index[:, None] + np.arange(3)], axis=1)
    observation = np.broadcast_to(np.arange(n_obs)[:, None], columns.shape)
    depends = columns >= 0
    prior_rows = 2 * n_obs + np.arange(2 * len(free))
    rows = np.concatenate([2 * observation[depends], 2 * observation[depends] + 1, prior_rows])  # x, y, prior
    cols = np.concatenate([columns[depends], columns[depends], column[:, _PRINCIPAL].ravel()])
    shape = (2 * n_obs + 2 * len(free), n_free + 3 * n_points)
    return coo_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)


def _with_params(cameras: Sequence[Camera], params: np.ndarray) -> list[Camera]:
    refined = []
    for camera, p in zip(cameras, params):
        (cx, cy), (fx, fy) = p[_PRINCIPAL], p[_FOCAL]
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        refined.append(replace(camera, K=K, R=Rotation.from_rotvec(p[_ROT]).as_matrix(), t=p[_TRANS].copy()))
    return refined


def _mean_baseline(cameras: Sequence[Camera]) -> float:
    return float(np.mean([np.linalg.norm(a.center - b.center) for a, b in combinations(cameras, 2)]))


def _fix_scale(cameras: list[Camera], mean_baseline: float) -> list[Camera]:
    """Scale the rig about the first camera's centre to the given mean baseline (projections unchanged)."""
    scale = mean_baseline / _mean_baseline(cameras)
    origin = cameras[0].center
    return [replace(cam, t=-cam.R @ (origin + scale * (cam.center - origin))) for cam in cameras]


def refine_calibration(
    cameras: Sequence[Camera],
    keypoint_sets: Mapping[str, np.ndarray],
    *,
    min_score: float = 0.5,
    min_views: int = 3,
    max_points: int = 4000,
    refine_focal: bool = False,
    principal_point_sigma_px: float = 20.0,
    loss: str = "soft_l1",
    f_scale_px: float = 10.0,
    max_error_px: float = DEFAULT_MAX_ERROR_PX,
) -> tuple[list[Camera], RefinementReport]:
    """Bundle-adjust the calibration on confident joints of several methods (see the module docstring).

    Args:
        cameras: the calibration read.
        keypoint_sets: method name → its ``[F, P, C, K, 3]`` keypoints (cameras in calibration order),
            at least two methods.
        min_score, min_views: a joint enters where at least ``min_views`` views have this score.
        max_points: frames are thinned evenly to keep at most this many points.
        refine_focal: also refine fx, fy.
        principal_point_sigma_px: the principal point prior's width (``inf``: none).
        loss, f_scale_px: ``least_squares``' robust loss and its scale (pixels).
        max_error_px: the robust triangulation's threshold for the initial points.

    Returns:
        The refined cameras and a report.
    """
    if len(keypoint_sets) < 2:
        raise ValueError("refine the calibration from at least two methods, never from one method alone")
    if len(cameras) < 2:
        raise ValueError("bundle adjustment needs at least two cameras")
    started = time.monotonic()
    sets = list(keypoint_sets.values())
    points, camera_index, point_index, observed = _observations(
        cameras, sets, min_score, min_views, max_points, max_error_px
    )
    if len(points) == 0:
        raise ValueError(f"no joint has score ≥ {min_score} in ≥ {min_views} cameras: nothing to refine on")
    params0 = _camera_params(cameras)
    free = _free_mask(len(cameras), refine_focal)
    dist = np.stack([camera.dist for camera in cameras])
    n_free = int(free.sum())
    prior_weight = f_scale_px / principal_point_sigma_px  # 0 for inf: no prior

    def residuals(x: np.ndarray) -> np.ndarray:
        params = params0.copy()
        params[free] = x[:n_free]
        projected = _project(params, dist, x[n_free:].reshape(-1, 3)[point_index], camera_index)
        prior = (params[:, _PRINCIPAL] - params0[:, _PRINCIPAL]) * prior_weight
        return np.concatenate([(projected - observed).ravel(), prior.ravel()])

    logger.info("bundle adjustment: %d cameras, %d points, %d observations", len(cameras), len(points), len(observed))
    solution = least_squares(
        residuals,
        np.concatenate([params0[free], points.ravel()]),
        jac_sparsity=_jacobian_sparsity(free, camera_index, point_index, len(points)),
        loss=loss,
        f_scale=f_scale_px,
        x_scale="jac",
        method="trf",
        max_nfev=200,
    )
    params = params0.copy()
    params[free] = solution.x[:n_free]
    refined = _fix_scale(_with_params(cameras, params), _mean_baseline(cameras))
    report = RefinementReport(
        methods=list(keypoint_sets),
        points=len(points),
        observations=len(observed),
        residual_before_px=all_view_residual(cameras, sets, min_score),
        residual_after_px=all_view_residual(refined, sets, min_score),
        principal_point_shift_px={
            b.name: (b.K[[0, 1], [2, 2]] - a.K[[0, 1], [2, 2]]).tolist() for a, b in zip(cameras, refined)
        },
        focal_shift_px={b.name: (b.K[[0, 1], [0, 1]] - a.K[[0, 1], [0, 1]]).tolist() for a, b in zip(cameras, refined)},
        rotation_change_deg={
            b.name: float(np.degrees(Rotation.from_matrix(b.R @ a.R.T).magnitude())) for a, b in zip(cameras, refined)
        },
        centre_shift_m={b.name: float(np.linalg.norm(b.center - a.center)) for a, b in zip(cameras, refined)},
        seconds=time.monotonic() - started,
    )
    logger.info(
        "bundle adjustment: median all-view residual %.2f → %.2f px in %.1f s (%s)",
        report.residual_before_px, report.residual_after_px, report.seconds, solution.message,
    )
    return refined, report
