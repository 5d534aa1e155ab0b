"""Pinhole cameras with OpenCV's k1, k2, p1, p2 lens distortion: projection and undistortion of points.

Conventions are OpenCV's (and pose2sim's): ``x_cam = R @ X + t`` maps world metres to camera
coordinates, x right, y down, z forward; pixels are distorted image coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """One calibrated camera.

    Attributes:
        name: camera name (pose2sim: the Qualisys serial, e.g. ``"cam01"``).
        size: image ``(width, height)`` in pixels.
        K: 3×3 intrinsic matrix (fx, fy, cx, cy; no skew).
        dist: distortion ``[k1, k2, p1, p2]`` (OpenCV's model, no k3).
        R: 3×3 world → camera rotation.
        t: world → camera translation (metres).
    """

    name: str
    size: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray
    R: np.ndarray
    t: np.ndarray

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates."""
        return -self.R.T @ self.t


def distort(xn: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Apply the k1, k2, p1, p2 model to normalised undistorted points ``[..., 2]``.

    ``dist`` is ``[4]``, or ``[..., 4]`` with one set per point.
    """
    k1, k2, p1, p2 = np.moveaxis(np.asarray(dist), -1, 0)
    x, y = xn[..., 0], xn[..., 1]
    r2 = x * x + y * y
    radial = 1.0 + k1 * r2 + k2 * r2 * r2
    xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    return np.stack([xd, yd], axis=-1)


def undistort_points(uv: np.ndarray, camera: Camera, max_iter: int = 50, tol: float = 1e-14) -> np.ndarray:
    """Distorted pixels ``[..., 2]`` → normalised undistorted coordinates ``[..., 2]``.

    OpenCV's ``undistortPoints`` fixed-point iteration, run until it has converged: OpenCV stops after 5
    iterations, which leaves up to ~1e-3 px at the image corners for strong distortion.
    """
    K, (k1, k2, p1, p2) = camera.K, camera.dist
    x0 = (uv[..., 0] - K[0, 2]) / K[0, 0]
    y0 = (uv[..., 1] - K[1, 2]) / K[1, 1]
    x, y = x0, y0
    for _ in range(max_iter):
        r2 = x * x + y * y
        inv_radial = 1.0 / (1.0 + k1 * r2 + k2 * r2 * r2)
        x_new = (x0 - 2.0 * p1 * x * y - p2 * (r2 + 2.0 * x * x)) * inv_radial
        y_new = (y0 - p1 * (r2 + 2.0 * y * y) - 2.0 * p2 * x * y) * inv_radial
        step = np.nanmax(np.abs(np.concatenate([np.ravel(x_new - x), np.ravel(y_new - y)])), initial=0.0)
        x, y = x_new, y_new
        if step < tol:
            break
    return np.stack([x, y], axis=-1)


def normalized_to_pixels(xn: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Normalised (distorted or not) coordinates ``[..., 2]`` → pixels through ``K``."""
    return np.stack([K[0, 0] * xn[..., 0] + K[0, 2], K[1, 1] * xn[..., 1] + K[1, 2]], axis=-1)


def project(points: np.ndarray, camera: Camera) -> np.ndarray:
    """World points ``[..., 3]`` → distorted pixels ``[..., 2]`` (NaN behind the camera)."""
    xc = points @ camera.R.T + camera.t
    with np.errstate(invalid="ignore", divide="ignore"):
        xn = xc[..., :2] / xc[..., 2:3]
    xn = np.where(xc[..., 2:3] > 0, xn, np.nan)
    return normalized_to_pixels(distort(xn, camera.dist), camera.K)
