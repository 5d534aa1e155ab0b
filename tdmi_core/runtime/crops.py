"""Person crops for the runtime: one crop box per window, held steady while the person stays put,
crops warped straight into a reused batch and normalised on the backend's device."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from tdmi_core.geometry import box_to_center_scale, boxes_to_center_scale, get_affine, warp_crop
from tdmi_core.model_input import pixel_normalization

__all__ = ["CropBox", "CropBatch", "Normalizer", "crop_boxes", "moved_beyond"]


@dataclass(frozen=True, eq=False)
class CropBox:
    """The crop region of one person for one window, and its affine both ways (computed when first used).

    Attributes:
        center: ``[2]`` region center (source pixels).
        scale_wh: ``[2]`` region size (source pixels), already enlarged and aspect-fitted.
        input_size_hw: the model input (crop) size.
        key: hashable identity of the region (exact floats): equal keys give identical crops.
    """

    center: np.ndarray
    scale_wh: np.ndarray
    input_size_hw: tuple[int, int]
    key: tuple[float, float, float, float]

    @classmethod
    def from_region(cls, center: np.ndarray, scale_wh: np.ndarray, input_size_hw: tuple[int, int]) -> CropBox:
        """The crop of a region (``center``, ``scale_wh``) onto a model input of ``input_size_hw``."""
        key = (float(center[0]), float(center[1]), float(scale_wh[0]), float(scale_wh[1]))
        return cls(center, scale_wh, input_size_hw, key)

    @classmethod
    def from_box(cls, box_xyxy: np.ndarray, input_size_hw: tuple[int, int], padding: float = 1.25) -> CropBox:
        """Crop of the paper family: box enlarged by ``padding`` and fitted to the model's aspect ratio."""
        in_h, in_w = input_size_hw
        center, scale = box_to_center_scale(box_xyxy, in_w / in_h, padding)
        return cls.from_region(center, scale, input_size_hw)

    @cached_property
    def matrix(self) -> np.ndarray:
        """``[2, 3]`` source → crop affine."""
        in_h, in_w = self.input_size_hw
        return get_affine(self.center, self.scale_wh, 0.0, (in_w, in_h))

    @cached_property
    def inverse(self) -> np.ndarray:
        """``[2, 3]`` crop → source affine."""
        in_h, in_w = self.input_size_hw
        return get_affine(self.center, self.scale_wh, 0.0, (in_w, in_h), inv=True)


def crop_boxes(boxes_xyxy: np.ndarray, input_size_hw: tuple[int, int], padding: float = 1.25) -> list[CropBox]:
    """:meth:`CropBox.from_box` for ``[N, 4]`` valid boxes at once (no affine is computed yet)."""
    in_h, in_w = input_size_hw
    centers, scales = boxes_to_center_scale(boxes_xyxy, in_w / in_h, padding)
    return [CropBox.from_region(c, s, input_size_hw) for c, s in zip(centers, scales)]


def moved_beyond(held: CropBox, new: CropBox, threshold: float) -> bool:
    """Whether ``new`` differs from ``held`` by more than ``threshold``.

    The center may move by ``threshold`` × the held region size per axis, and the region size
    may change by a factor up to ``1 + threshold``. ``threshold = 0`` → any change counts.
    """
    shift = np.abs(new.center - held.center) / held.scale_wh
    grow = np.abs(np.log(new.scale_wh / held.scale_wh))
    return bool(np.any(shift > threshold) or np.any(grow > math.log1p(threshold)))


class CropBatch:
    """Warps crops straight into one reused ``[B, H, W, 3]`` uint8 buffer (grown when a batch is bigger).

    The returned batch is a view of the buffer: use it before the next call.
    """

    def __init__(self, input_size_hw: tuple[int, int]) -> None:
        self.input_size_hw = (int(input_size_hw[0]), int(input_size_hw[1]))
        self._buffer = np.empty((0, *self.input_size_hw, 3), np.uint8)

    def __call__(self, images: list[np.ndarray], matrices: list[np.ndarray]) -> np.ndarray:
        """One crop per (image ``[H, W, 3]`` uint8 BGR, source → crop ``matrix``): ``[B, H, W, 3]``, black outside."""
        n = len(images)
        if n > len(self._buffer):
            self._buffer = np.empty((max(n, 2 * len(self._buffer)), *self.input_size_hw, 3), np.uint8)
        in_h, in_w = self.input_size_hw
        out = self._buffer[:n]
        for i, (image, m) in enumerate(zip(images, matrices)):
            warp_crop(image, m, (in_w, in_h), out=out[i])
        return out


class Normalizer:
    """``[B, H, W, 3]`` uint8 BGR crops → ``[B, 3, H, W]`` RGB model input on ``device``, ``(pixel - shift) * scale``.

    The constants (:func:`tdmi_core.model_input.pixel_normalization`, the training dataset's) are built
    once; the uint8 batch is moved first and converted on the device (4× less to copy to a GPU) into
    a reused float buffer, channels-last in memory when the backend runs NHWC (so it needs no copy).
    The result is a view of that buffer: the backend must consume it before the next call.

    Args:
        device: where the input goes (the backend's device).
        dtype: the backend's input dtype (bf16/fp16 are cast from the float32 result).
        channels_last: lay the result out NHWC in memory.
    """

    def __init__(self, device: torch.device | str, dtype: torch.dtype = torch.float32, channels_last: bool = False) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        shift, scale = pixel_normalization()
        self._shift = torch.from_numpy(shift).to(self.device).view(1, 3, 1, 1)
        self._scale = torch.from_numpy(scale).to(self.device).view(1, 3, 1, 1)
        self._buffer = torch.empty(0, device=self.device)

    def __call__(self, crops_bgr: np.ndarray) -> Tensor:
        """Normalise ``crops_bgr[B, H, W, 3]`` (uint8 BGR)."""
        x = torch.from_numpy(np.ascontiguousarray(crops_bgr)).to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        n, _, h, w = x.shape
        if self._buffer.shape[0] < n or self._buffer.shape[2:] != (h, w):
            self._buffer = torch.empty((n, 3, h, w), device=self.device).contiguous(memory_format=self.memory_format)
        out = self._buffer[:n]
        for rgb, bgr in ((0, 2), (1, 1), (2, 0)):  # BGR → RGB while converting to float: no flipped copy
            out[:, rgb].copy_(x[:, bgr])
        out.sub_(self._shift).mul_(self._scale)
        return out if self.dtype == torch.float32 else out.to(self.dtype)
