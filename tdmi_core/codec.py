"""Heatmap codec: keypoints in crop pixels ⇄ Gaussian heatmaps. One object for targets and decoding.

Rules pinned here (and by ``test/core/test_codec.py``):

- Heatmap pixel ``j`` corresponds to crop coordinate ``j * stride`` with ``stride = input / heatmap``
  per axis (HRNet / mmpose MSRA convention).
- ``encode`` draws an unnormalised Gaussian (peak 1, ``sigma`` in heatmap pixels) centred on the
  *exact* sub-pixel keypoint position, truncated to a ``(6 sigma + 1)``-wide square like HRNet's
  targets. (HRNet rounds the centre to an integer pixel; the exact centre removes that
  quantisation, so an encode→decode round trip lands within a quarter heatmap pixel.)
  A keypoint gets weight 0 when it is not visible, not finite, or its truncated Gaussian does not
  touch the heatmap (HRNet's rule); its heatmap is then all zeros.
- ``decode`` takes the argmax per keypoint and moves it a quarter pixel toward the higher
  neighbour, **per axis**: x is refined when both x-neighbours exist (``0 < px < w - 1``), y when
  both y-neighbours exist. (HRNet's ``inference.py`` refines only when ``1 < px < w - 1 and
  1 < py < h - 1``, which drops the x step for any peak on the top/bottom rows and excludes column 1
  for no reason; mmpose's ``refine_keypoints`` gates per axis as we do.) Equal neighbours → no shift.
  The score is the peak value; low or negative peaks are kept (callers threshold on the score).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["HeatmapCodec", "get_heatmap_maximum", "refine_dark", "refine_quarter_pixel", "REFINES"]

REFINES: tuple[str, ...] = ("quarter", "dark")


def get_heatmap_maximum(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer argmax location and value of each heatmap.

    Args:
        heatmaps: ``[..., K, h, w]`` float array.

    Returns:
        ``locs[..., K, 2]`` (x, y) as float64 integers, ``vals[..., K]`` peak values.
        Ties resolve to the first maximum in row-major order.
    """
    hm = np.asarray(heatmaps)
    if hm.ndim < 3:
        raise ValueError(f"heatmaps must have shape [..., K, h, w], got shape {hm.shape}")
    h, w = hm.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"heatmaps must be non-empty, got shape {hm.shape}")
    flat = hm.reshape(*hm.shape[:-2], h * w)
    idx = np.argmax(flat, axis=-1)
    vals = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    locs = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
    return locs, vals


def refine_quarter_pixel(heatmaps: np.ndarray, locs: np.ndarray) -> np.ndarray:
    """Shift integer peak locations a quarter pixel toward the higher neighbour, per axis.

    Args:
        heatmaps: ``[..., K, h, w]``.
        locs: ``[..., K, 2]`` integer (x, y) peaks from :func:`get_heatmap_maximum`.

    Returns:
        ``[..., K, 2]`` refined locations (float64). See the module docstring for the gating rule.
    """
    hm = np.asarray(heatmaps)
    h, w = hm.shape[-2:]
    flat = hm.reshape(-1, h, w)
    pts = np.asarray(locs, dtype=np.float64).reshape(-1, 2).copy()
    n = np.arange(flat.shape[0])
    px = pts[:, 0].astype(np.int64)
    py = pts[:, 1].astype(np.int64)
    has_x = (px > 0) & (px < w - 1)
    has_y = (py > 0) & (py < h - 1)
    # Clip indices so the gather is valid everywhere; the gate zeroes the invalid ones.
    dx = flat[n, py, np.clip(px + 1, 0, w - 1)] - flat[n, py, np.clip(px - 1, 0, w - 1)]
    dy = flat[n, np.clip(py + 1, 0, h - 1), px] - flat[n, np.clip(py - 1, 0, h - 1), px]
    pts[:, 0] += np.where(has_x, 0.25 * np.sign(dx), 0.0)
    pts[:, 1] += np.where(has_y, 0.25 * np.sign(dy), 0.0)
    return pts.reshape(np.shape(locs))


def refine_dark(heatmaps: np.ndarray, locs: np.ndarray, sigma: float) -> np.ndarray:
    """Distribution-aware sub-pixel refinement (DARK, Zhang et al. CVPR 2020) of integer peaks.

    Each map is smoothed with a Gaussian of the target's width (which makes the peak Gaussian-shaped
    again), and the peak of its log is found by one Newton step from the integer maximum:
    ``offset = -H^-1 g`` with central-difference gradient ``g`` and Hessian ``H``. Peaks within two
    pixels of the border, or with a non-negative-definite Hessian (not a maximum), keep their
    integer location; offsets are clipped to one pixel.

    Only the smoothed 5x5 patch around each peak enters the step, so only that is smoothed: the same
    kernel and border rule as ``cv2.GaussianBlur`` of the whole map (``cv2.getGaussianKernel``,
    reflect-101), 10x less work. (DARK's rescaling of the smoothed map to the original peak adds a
    constant to the log, which no derivative sees.)

    Args:
        heatmaps: ``[..., K, h, w]``; locs: ``[..., K, 2]`` integer (x, y) maxima; sigma: target sigma.

    Returns:
        ``[..., K, 2]`` refined locations (float64).
    """
    import cv2
    from numpy.lib.stride_tricks import sliding_window_view

    hm = np.asarray(heatmaps, dtype=np.float32)
    h, w = hm.shape[-2:]
    flat = hm.reshape(-1, h, w)
    ksize = 2 * int(round(2.5 * sigma)) + 1
    kernel = cv2.getGaussianKernel(ksize, sigma).ravel()
    pts = np.asarray(locs, dtype=np.float64).reshape(-1, 2).copy()
    x = pts[:, 0].astype(np.int64)
    y = pts[:, 1].astype(np.int64)
    ok = (x > 1) & (x < w - 2) & (y > 1) & (y < h - 2)
    reach = np.arange(-2 - ksize // 2, 3 + ksize // 2)  # the 5x5 patch and the kernel's reach around it
    rows, cols = _reflect_101(y[:, None] + reach, h), _reflect_101(x[:, None] + reach, w)
    window = flat[np.arange(flat.shape[0])[:, None, None], rows[:, :, None], cols[:, None, :]]
    patch = sliding_window_view(sliding_window_view(window, ksize, axis=1) @ kernel, ksize, axis=2) @ kernel
    log = np.log(np.maximum(patch, 1e-10))  # [N, 5, 5], the peak at [2, 2]

    def at(dy: int, dx: int) -> np.ndarray:
        return log[:, 2 + dy, 2 + dx]

    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    hxx = 0.25 * (at(0, 2) - 2 * at(0, 0) + at(0, -2))
    hyy = 0.25 * (at(2, 0) - 2 * at(0, 0) + at(-2, 0))
    hxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = hxx * hyy - hxy * hxy
    maximum = ok & (det > 1e-12) & (hxx < 0)  # negative-definite Hessian: a real peak
    safe = np.where(maximum, det, 1.0)
    ox = -(hyy * gx - hxy * gy) / safe
    oy = -(-hxy * gx + hxx * gy) / safe
    pts[:, 0] += np.where(maximum, np.clip(ox, -1.0, 1.0), 0.0)
    pts[:, 1] += np.where(maximum, np.clip(oy, -1.0, 1.0), 0.0)
    return pts.reshape(np.shape(locs))


def _reflect_101(index: np.ndarray, size: int) -> np.ndarray:
    """OpenCV's BORDER_REFLECT_101 (``gfedcb|abcdefgh|gfedcba``) for any integer indices into ``size`` pixels."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    folded = np.abs(index) % period
    return np.where(folded >= size, period - folded, folded)


class HeatmapCodec:
    """Encode keypoints to Gaussian heatmaps and decode heatmaps to keypoints (crop pixels).

    Args:
        input_size_hw: model input crop size (H, W), e.g. (384, 288).
        heatmap_size_hw: heatmap size (h, w), e.g. (96, 72).
        sigma: Gaussian standard deviation in heatmap pixels (3 in the paper family).
        refine: sub-pixel step of :meth:`decode`: "quarter" (the paper family's) or "dark".
    """

    def __init__(
        self,
        input_size_hw: tuple[int, int],
        heatmap_size_hw: tuple[int, int],
        sigma: float = 3.0,
        refine: str = "quarter",
    ) -> None:
        in_h, in_w = (int(v) for v in input_size_hw)
        hm_h, hm_w = (int(v) for v in heatmap_size_hw)
        if min(in_h, in_w, hm_h, hm_w) <= 0:
            raise ValueError(f"sizes must be positive, got input {input_size_hw}, heatmap {heatmap_size_hw}")
        if not (sigma > 0 and math.isfinite(sigma)):
            raise ValueError(f"sigma must be a positive finite number, got {sigma}")
        self.input_size_hw = (in_h, in_w)
        self.heatmap_size_hw = (hm_h, hm_w)
        self.sigma = float(sigma)
        if refine not in REFINES:
            raise ValueError(f"refine must be one of {REFINES}, got {refine!r}")
        self.refine = refine
        # crop pixels per heatmap pixel, (x, y)
        self.stride_xy = np.array([in_w / hm_w, in_h / hm_h], dtype=np.float64)

    def __repr__(self) -> str:
        return (
            f"HeatmapCodec(input_size_hw={self.input_size_hw}, heatmap_size_hw={self.heatmap_size_hw}, "
            f"sigma={self.sigma}, refine={self.refine!r})"
        )

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian target heatmaps and per-keypoint weights.

        Args:
            keypoints: ``[K, 2]`` (x, y) in input-crop pixels.
            visible: ``[K]`` visibility (> 0 means labelled and used).

        Returns:
            ``heatmaps[K, h, w]`` float32 in [0, 1] and ``weights[K]`` float32 in {0, 1}.
        """
        kpts = np.asarray(keypoints, dtype=np.float64)
        vis = np.asarray(visible)
        if kpts.ndim != 2 or kpts.shape[1] != 2:
            raise ValueError(f"keypoints must have shape [K, 2], got {kpts.shape}")
        if vis.shape != (kpts.shape[0],):
            raise ValueError(f"visible must have shape [K]={kpts.shape[0]}, got {vis.shape}")
        hm_h, hm_w = self.heatmap_size_hw
        finite = np.all(np.isfinite(kpts), axis=1)
        mu = np.where(finite[:, None], kpts, 0.0) / self.stride_xy  # [K, 2] heatmap pixels
        radius = 3.0 * self.sigma
        # HRNet's rule: drop the joint when its truncated Gaussian square misses the heatmap.
        inside = (
            (mu[:, 0] + radius >= 0) & (mu[:, 0] - radius <= hm_w - 1)
            & (mu[:, 1] + radius >= 0) & (mu[:, 1] - radius <= hm_h - 1)
        )
        weights = ((vis > 0) & finite & inside).astype(np.float32)
        xs = np.arange(hm_w, dtype=np.float64)
        ys = np.arange(hm_h, dtype=np.float64)
        dx = xs[None, :] - mu[:, 0:1]  # [K, w]
        dy = ys[None, :] - mu[:, 1:2]  # [K, h]
        gx = np.where(np.abs(dx) <= radius, np.exp(-(dx**2) / (2 * self.sigma**2)), 0.0)
        gy = np.where(np.abs(dy) <= radius, np.exp(-(dy**2) / (2 * self.sigma**2)), 0.0)
        heatmaps = gy[:, :, None] * gx[:, None, :] * weights[:, None, None]
        return heatmaps.astype(np.float32), weights

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints from heatmaps: argmax + sub-pixel refinement (``refine``), in input-crop pixels.

        Args:
            heatmaps: ``[..., K, h, w]`` (numpy, or anything ``np.asarray`` accepts, e.g. a CPU tensor).

        Returns:
            ``coords[..., K, 2]`` (x, y) float32 in input-crop pixels and ``scores[..., K]`` float32 peak values.
        """
        hm = np.asarray(heatmaps, dtype=np.float32)
        if hm.ndim < 3 or tuple(hm.shape[-2:]) != self.heatmap_size_hw:
            raise ValueError(
                f"heatmaps must have shape [..., K, {self.heatmap_size_hw[0]}, {self.heatmap_size_hw[1]}], "
                f"got {hm.shape}"
            )
        if not np.all(np.isfinite(hm)):
            raise ValueError("heatmaps contain NaN or inf; the model output is broken (check weights and precision)")
        locs, vals = get_heatmap_maximum(hm)
        locs = refine_dark(hm, locs, self.sigma) if self.refine == "dark" else refine_quarter_pixel(hm, locs)
        coords = locs * self.stride_xy
        return coords.astype(np.float32), vals.astype(np.float32)
