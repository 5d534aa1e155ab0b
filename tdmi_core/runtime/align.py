"""Backbone features of one crop moved into another crop's frame (the ``aligned`` mode).

A person's frame is cropped with its own box once; a window keyed on another frame needs that
frame's features as if it had been cropped with the key frame's box. For axis-aligned crops the
two feature grids differ by a scale and a shift, so bilinear resampling of the cached feature maps
(RoIAlign on features) stands in for a second backbone pass over a re-cropped image. Feature pixel
``j`` is crop pixel ``j * stride`` (the codec's rule), so an unchanged box resamples to itself exactly.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tdmi_core.runtime.crops import CropBox

__all__ = ["align_features", "feature_affine"]


def _homogeneous(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def feature_affine(source: CropBox, target: CropBox, stride: int) -> np.ndarray:
    """``[2, 3]`` map from ``target``'s feature pixels to ``source``'s feature pixels.

    target feature px → target crop px (× stride) → image px → source crop px → source feature px (÷ stride).
    """
    scale = np.diag([float(stride), float(stride), 1.0])
    unscale = np.diag([1.0 / stride, 1.0 / stride, 1.0])
    return (unscale @ _homogeneous(source.matrix) @ _homogeneous(target.inverse) @ scale)[:2]


def align_features(features: Tensor, affines: np.ndarray) -> Tensor:
    """Resample ``features[R, S, C, h, w]`` through ``affines[R, 2, 3]`` (output px → input px), bilinear.

    Outside the source features the nearest border value is repeated (the neighbouring image content
    a re-crop would see is closer to the edge of the person than to zeros). Computed in float32 (a
    bf16 sampling grid would be off by up to a quarter pixel) and returned in the input's dtype.
    """
    r, s, c, h, w = features.shape
    # pixel coordinates -> grid_sample's [-1, 1] (align_corners=True: -1 and 1 are the outer pixel centres)
    to_norm = np.array([[2.0 / max(w - 1, 1), 0.0, -1.0], [0.0, 2.0 / max(h - 1, 1), -1.0], [0.0, 0.0, 1.0]])
    theta = to_norm @ np.stack([_homogeneous(a) for a in affines]) @ np.linalg.inv(to_norm)
    x = features.reshape(r, s * c, h, w).float()
    grid = F.affine_grid(torch.from_numpy(theta[:, :2]).float().to(x.device), [r, s * c, h, w], align_corners=True)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.reshape(r, s, c, h, w).to(features.dtype)
