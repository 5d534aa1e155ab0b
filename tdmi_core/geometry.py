"""Affine person crops: box → (center, scale) → 2×3 warp matrix → crop, and back.

Pure functions over numpy, no hidden constants: ``scale_wh`` is the size of the source region
in *pixels* (HRNet's code keeps it in units of a hidden ``pixel_std=200``; we do not).

Conventions (shared by training, decoding and the runtime, so crops and decoding cannot drift):

- A crop of output size ``(out_w, out_h)`` maps the source point ``center`` to the output point
  ``(out_w / 2, out_h / 2)`` (mmpose / HRNet convention: pixel ``i`` covers ``[i, i + 1)`` only
  approximately; what matters is that forward and inverse use the same rule).
- ``rot_deg`` turns the source region by ``rot_deg`` degrees with the matrix
  ``[[cos, -sin], [sin, cos]]`` in image coordinates (y down), so that the source point
  ``center + R(rot) @ v`` lands on ``out_center + v * out/scale``; this equals mmpose's
  ``get_warp_matrix`` when the aspect ratios of ``scale_wh`` and the output agree.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = [
    "box_to_center_scale",
    "boxes_to_center_scale",
    "center_scale_to_box",
    "get_affine",
    "invert_affine",
    "warp_crop",
    "transform_points",
    "crop_affine_for_box",
]


def _as_box(box_xyxy: np.ndarray | tuple | list) -> np.ndarray:
    box = np.asarray(box_xyxy, dtype=np.float64)
    if box.shape != (4,):
        raise ValueError(f"box_xyxy must have shape (4,) as (x1, y1, x2, y2), got shape {box.shape}")
    if not np.all(np.isfinite(box)):
        raise ValueError(f"box_xyxy must be finite, got {box.tolist()}")
    if box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"box_xyxy must satisfy x2 >= x1 and y2 >= y1, got {box.tolist()}; pass (x1, y1, x2, y2)")
    return box


def box_to_center_scale(
    box_xyxy: np.ndarray | tuple | list,
    aspect_w_over_h: float,
    padding: float = 1.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Center and pixel size of the crop region for a person box.

    The box is first grown along one axis to the aspect ratio ``aspect_w_over_h`` (never shrunk),
    then both sides are multiplied by ``padding`` (1.25 = the paper family's 25 % enlargement).

    Args:
        box_xyxy: ``[4]`` box ``(x1, y1, x2, y2)`` in source-image pixels.
        aspect_w_over_h: model input width / height, e.g. ``288 / 384``.
        padding: enlargement factor applied after the aspect fit (>= 1 recommended).

    Returns:
        ``center[2]`` = (cx, cy) and ``scale_wh[2]`` = (w, h) of the crop region, both float64 pixels.
        A degenerate box (zero width and height) gets a 1-pixel region so the affine stays invertible.
    """
    centers, scales = boxes_to_center_scale(_as_box(box_xyxy)[None], aspect_w_over_h, padding)
    return centers[0], scales[0]


def boxes_to_center_scale(
    boxes_xyxy: np.ndarray, aspect_w_over_h: float, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`box_to_center_scale` of ``[N, 4]`` boxes at once (the same arithmetic, element by element).

    The boxes are not checked here: pass valid ones (finite, ``x2 >= x1``, ``y2 >= y1``), e.g.
    :class:`tdmi_core.runtime.types.TrackedBox` boxes, which were checked when made.

    Returns:
        ``centers[N, 2]`` and ``scales_wh[N, 2]``, float64 pixels.
    """
    if not (aspect_w_over_h > 0 and math.isfinite(aspect_w_over_h)):
        raise ValueError(f"aspect_w_over_h must be a positive finite number, got {aspect_w_over_h}")
    if not (padding > 0 and math.isfinite(padding)):
        raise ValueError(f"padding must be a positive finite number, got {padding}")
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    centers = np.stack([(b[:, 0] + b[:, 2]) * 0.5, (b[:, 1] + b[:, 3]) * 0.5], axis=1)
    w = np.maximum(b[:, 2] - b[:, 0], 0.0)
    h = np.maximum(b[:, 3] - b[:, 1], 0.0)
    wide = w > aspect_w_over_h * h
    w, h = np.where(wide, w, h * aspect_w_over_h), np.where(wide, w / aspect_w_over_h, h)
    # degenerate box: keep the affine invertible with a 1-pixel region
    degenerate_wh = (aspect_w_over_h, 1.0) if aspect_w_over_h >= 1.0 else (1.0, 1.0 / aspect_w_over_h)
    empty = w <= 0.0
    w, h = np.where(empty, degenerate_wh[0], w), np.where(empty, degenerate_wh[1], h)
    return centers, np.stack([w * padding, h * padding], axis=1)


def center_scale_to_box(center: np.ndarray, scale_wh: np.ndarray) -> np.ndarray:
    """Inverse of the region part of :func:`box_to_center_scale`: ``[4]`` (x1, y1, x2, y2) of the crop region."""
    c = np.asarray(center, dtype=np.float64)
    s = np.asarray(scale_wh, dtype=np.float64)
    return np.concatenate([c - s * 0.5, c + s * 0.5])


def get_affine(
    center: np.ndarray | tuple | list,
    scale_wh: np.ndarray | tuple | list,
    rot_deg: float,
    output_size_wh: tuple[int, int] | np.ndarray,
    inv: bool = False,
) -> np.ndarray:
    """2×3 affine matrix mapping the source region onto an output crop (or back with ``inv=True``).

    Args:
        center: ``[2]`` region center (cx, cy) in source pixels.
        scale_wh: ``[2]`` region size (w, h) in source pixels; both > 0.
        rot_deg: region rotation in degrees (see module docstring for the sign).
        output_size_wh: crop size (out_w, out_h) in pixels.
        inv: return the crop → source matrix instead.

    Returns:
        ``[2, 3]`` float64 matrix ``M`` with ``dst = M[:, :2] @ src + M[:, 2]``.
    """
    c = np.asarray(center, dtype=np.float64).reshape(2)
    s = np.asarray(scale_wh, dtype=np.float64).reshape(2)
    out = np.asarray(output_size_wh, dtype=np.float64).reshape(2)
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(s)) and math.isfinite(rot_deg)):
        raise ValueError(f"center, scale_wh and rot_deg must be finite, got {c}, {s}, {rot_deg}")
    if np.any(s <= 0) or np.any(out <= 0):
        raise ValueError(f"scale_wh and output_size_wh must be positive, got {s} and {out}")
    rad = math.radians(rot_deg)
    cos, sin = math.cos(rad), math.sin(rad)
    # Forward: dst = out/2 + diag(out/s) @ R(-rot) @ (src - c)
    r_inv = np.array([[cos, sin], [-sin, cos]])
    k = np.diag(out / s)
    a = k @ r_inv
    if inv:
        # src = c + R(rot) @ diag(s/out) @ (dst - out/2)
        a_inv = np.array([[cos, -sin], [sin, cos]]) @ np.diag(s / out)
        t = c - a_inv @ (out * 0.5)
        return np.hstack([a_inv, t[:, None]])
    t = out * 0.5 - a @ c
    return np.hstack([a, t[:, None]])


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine matrix (raises on a singular one)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"affine matrix must have shape (2, 3), got {m.shape}")
    a = m[:, :2]
    det = float(np.linalg.det(a))
    if abs(det) < 1e-12:
        raise ValueError("affine matrix is singular (zero-area crop region); check the box and scale")
    a_inv = np.linalg.inv(a)
    return np.hstack([a_inv, (-a_inv @ m[:, 2])[:, None]])


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine to points.

    Args:
        points: ``[..., 2]`` (x, y).
        matrix: ``[2, 3]``.

    Returns:
        ``[..., 2]`` transformed points, float64 (float32 input stays float32).
    """
    pts = np.asarray(points)
    if pts.shape[-1:] != (2,):
        raise ValueError(f"points must have a last axis of size 2, got shape {pts.shape}")
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"affine matrix must have shape (2, 3), got {m.shape}")
    out = pts.astype(np.float64) @ m[:, :2].T + m[:, 2]
    return out.astype(np.float32) if pts.dtype == np.float32 else out


def warp_crop(
    image: np.ndarray,
    matrix: np.ndarray,
    out_wh: tuple[int, int],
    border_value: float | tuple = 0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Crop ``image`` with a source → crop affine (bilinear, constant border).

    Args:
        image: ``[H, W, C]`` or ``[H, W]`` array (any dtype cv2 accepts, e.g. uint8).
        matrix: ``[2, 3]`` source → crop matrix from :func:`get_affine`.
        out_wh: crop size (out_w, out_h).
        out: optional C-contiguous ``[out_h, out_w, C]`` array of the image's dtype to write into
            (e.g. one row of a preallocated batch), so no temporary crop is made.

    Returns:
        ``[out_h, out_w, C]`` (or ``[out_h, out_w]``) crop with the input's dtype (``out`` when given).
    """
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image must be a non-empty [H, W] or [H, W, C] array, got shape {image.shape}")
    w, h = int(out_wh[0]), int(out_wh[1])
    if w <= 0 or h <= 0:
        raise ValueError(f"out_wh must be positive, got {out_wh}")
    return cv2.warpAffine(
        image,
        np.asarray(matrix, dtype=np.float64),
        (w, h),
        dst=out,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border_value,
    )


def crop_affine_for_box(
    box_xyxy: np.ndarray | tuple | list,
    input_size_hw: tuple[int, int],
    padding: float = 1.25,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper family's person crop: box enlarged by ``padding``, fitted to the model aspect, no rotation.

    Returns:
        ``(center[2], scale_wh[2], M[2, 3])`` with ``M`` mapping source pixels to crop pixels.
    """
    in_h, in_w = int(input_size_hw[0]), int(input_size_hw[1])
    center, scale = box_to_center_scale(box_xyxy, in_w / in_h, padding)
    return center, scale, get_affine(center, scale, 0.0, (in_w, in_h))
