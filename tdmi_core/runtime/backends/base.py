"""The one small interface every inference backend implements."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["Backend", "PRECISIONS", "check_precision"]

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device, allowed: tuple[str, ...]) -> torch.dtype:
    """Return the torch dtype for ``precision`` or raise with the choices this backend/device has."""
    if precision not in allowed:
        raise ValueError(f"precision {precision!r} is not supported on {device} by this backend; choose from {allowed}")
    return _DTYPES[precision]


@runtime_checkable
class Backend(Protocol):
    """Runs the two halves of a TDMI model on batches.

    Attributes:
        name: short backend name for logs and benchmark tables (e.g. ``"torch-cpu-fp32"``).
        device: device where inputs must live and outputs are returned.
        input_dtype: dtype the backbone expects for its (normalised) crops.
        max_batch: largest batch one call accepts (None = unbounded); callers split bigger batches.
    """

    name: str
    device: torch.device
    input_dtype: torch.dtype
    max_batch: int | None

    def backbone(self, crops: Tensor) -> Tensor:
        """``crops[B, 3, H, W]`` (RGB, ImageNet-normalised) → ``features[B, S, C, H/4, W/4]``."""
        ...

    def temporal_head(self, motion: Tensor, visual: Tensor) -> Tensor:
        """The head on a window's split inputs (``TemporalHead.split_inputs``) → ``heatmaps[B, K, h, w]``.

        ``motion[B, T, S, C, h', w']``: every window frame's stage features pooled for the TDE;
        ``visual[B, V, C, h, w]``: the final-stage features of the frames the visual feature reads
        (the key frame for TDMI, all for TDMI-ST).
        """
        ...
