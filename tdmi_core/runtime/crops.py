"""Person crop boxes for the runtime: one affine per window, held steady while the person stays put."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tdmi_core.geometry import box_to_center_scale, get_affine, warp_crop
from tdmi_core.model_input import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB

__all__ = ["CropBox", "moved_beyond", "crop_batch", "to_model_input"]


@dataclass(frozen=True, eq=False)
class CropBox:
    """The crop region of one person for one window and its affine both ways.

    Attributes:
        center: ``[2]`` region center (source pixels).
        scale_wh: ``[2]`` region size (source pixels), already enlarged and aspect-fitted.
        matrix: ``[2, 3]`` source → crop affine.
        inverse: ``[2, 3]`` crop → source affine.
        key: hashable identity of the region (exact floats): equal keys give identical crops.
    """

    center: np.ndarray
    scale_wh: np.ndarray
    matrix: np.ndarray
    inverse: np.ndarray
    key: tuple[float, float, float, float]

    @classmethod
    def from_box(cls, box_xyxy: np.ndarray, input_size_hw: tuple[int, int], padding: float = 1.25) -> "CropBox":
        """Crop of the paper family: box enlarged by ``padding`` and fitted to the model's aspect ratio."""
        in_h, in_w = input_size_hw
        center, scale = box_to_center_scale(box_xyxy, in_w / in_h, padding)
        return cls(
            center=center,
            scale_wh=scale,
            matrix=get_affine(center, scale, 0.0, (in_w, in_h)),
            inverse=get_affine(center, scale, 0.0, (in_w, in_h), inv=True),
            key=(float(center[0]), float(center[1]), float(scale[0]), float(scale[1])),
        )


def moved_beyond(held: CropBox, new: CropBox, threshold: float) -> bool:
    """Whether ``new`` differs from ``held`` by more than ``threshold``.

    The center may move by ``threshold`` × the held region size per axis, and the region size
    may change by a factor up to ``1 + threshold``. ``threshold = 0`` → any change counts.
    """
    shift = np.abs(new.center - held.center) / held.scale_wh
    grow = np.abs(np.log(new.scale_wh / held.scale_wh))
    return bool(np.any(shift > threshold) or np.any(grow > math.log1p(threshold)))


def crop_batch(images: list[np.ndarray], matrices: list[np.ndarray], input_size_hw: tuple[int, int]) -> np.ndarray:
    """Warp one crop per (image, matrix) pair.

    Returns:
        ``[B, H, W, 3]`` uint8 BGR crops (black outside the image).
    """
    in_h, in_w = input_size_hw
    out = np.empty((len(images), in_h, in_w, 3), dtype=np.uint8)
    for i, (image, m) in enumerate(zip(images, matrices)):
        out[i] = warp_crop(image, m, (in_w, in_h))
    return out


def to_model_input(crops_bgr: np.ndarray, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``[B, H, W, 3]`` uint8 BGR → ``[B, 3, H, W]`` RGB ImageNet-normalised tensor on ``device``.

    The uint8 batch is moved first and normalised on the device (4× less to copy to a GPU).
    """
    x = torch.from_numpy(crops_bgr).to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).flip(1).float().div_(255.0)  # BGR → RGB, [0, 1]
    mean = torch.tensor(IMAGENET_MEAN_RGB, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD_RGB, device=device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std).to(dtype).contiguous()
