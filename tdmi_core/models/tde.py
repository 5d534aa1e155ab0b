"""Multi-stage Temporal Difference Encoder (TDE), paper Sec. 3.1, Eqs. 1-5.

Input: the stage features of a window of T = 2*delta+1 frames, ``[B, T, S=4, C, h, w]``.
  Eq. 1  :func:`temporal_differences` -- consecutive differences F_{k+1} - F_k per stage.
  Eq. 2  ``stage_fusion[j]`` -- 3x3 conv over the concatenated differences, then residual blocks
         ({3, 3, 2, 2} in the paper) -> D^j.
  Eq. 3  ``offset_mask[j]`` -- residual blocks on D^j, then a 3x3 conv, predict DCNv2 sampling
         offsets O^j and modulation scalars W^j (sigmoid).
  Eq. 4  ``modulation[j]`` (:class:`ModulatedDeformConv2d`) -- DCNv2 on D^j with O^j, W^j -> D̄^j.
  Eq. 5  ``accumulate[j]`` -- progressive accumulation v_j = Conv(v_{j-1} + D̄^j); M = v_4.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import deform_conv2d

from tdmi_core.models.configs import NUM_STAGES, TDEConfig
from tdmi_core.models.hrnet import BN_MOMENTUM, BasicBlock


def temporal_differences(window: Tensor) -> Tensor:
    """Eq. 1: consecutive feature differences along time.

    Args:
        window: ``[B, T, S, C, h, w]`` stage features in time order.

    Returns:
        ``[B, T-1, S, C, h, w]``, entry k = F_{k+1} - F_k (so for T=3: {F_t - F_{t-1}, F_{t+1} - F_t}).
    """
    return window[:, 1:] - window[:, :-1]


def conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    """3x3 conv + BatchNorm + ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False),
        nn.BatchNorm2d(out_ch, momentum=BN_MOMENTUM),
        nn.ReLU(inplace=True),
    )


DEFORM_IMPLS: tuple[str, ...] = ("torchvision", "grid_sample")


def deform_conv2d_grid_sample(x: Tensor, offset: Tensor, weight: Tensor, bias: Tensor, mask: Tensor) -> Tensor:
    """DCNv2 (stride 1, dilation 1, 'same' padding) with ``F.grid_sample``; same numbers as torchvision.

    Each kernel tap k samples ``x`` bilinearly at (i + ky_k + dy_k, j + kx_k + dx_k), zero outside the
    image (as torchvision's kernel: ``align_corners=True`` maps pixel centres exactly), is scaled by
    its mask and the taps are mixed by a 1x1 convolution with the reshaped kernel. On CPU this is
    ~6x faster than ``torchvision.ops.deform_conv2d`` forward and backward (see docs/model.md).

    Args:
        x: ``[B, C, H, W]``; offset: ``[B, 2*G*k*k, H, W]`` as (dy, dx) per tap and offset group;
        weight: ``[C_out, C, k, k]``; bias: ``[C_out]``; mask: ``[B, G*k*k, H, W]``.
    """
    b, c, h, w = x.shape
    k = weight.shape[-1]
    kk = k * k
    groups = mask.shape[1] // kk
    pad = k // 2
    taps = torch.arange(k, dtype=x.dtype, device=x.device) - pad
    ky = taps.repeat_interleave(k).view(1, 1, kk, 1, 1)
    kx = taps.repeat(k).view(1, 1, kk, 1, 1)
    ys = torch.arange(h, dtype=x.dtype, device=x.device).view(1, 1, 1, h, 1)
    xs = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, 1, 1, w)
    off = offset.view(b, groups, kk, 2, h, w)
    py = ys + ky + off[:, :, :, 0]  # [B, G, kk, H, W] sampling rows in pixels
    px = xs + kx + off[:, :, :, 1]
    grid = torch.stack([px * (2.0 / max(w - 1, 1)) - 1.0, py * (2.0 / max(h - 1, 1)) - 1.0], dim=-1)
    sampled = F.grid_sample(
        x.reshape(b * groups, c // groups, h, w),
        grid.reshape(b * groups, kk * h, w, 2),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    ).view(b, groups, c // groups, kk, h, w)
    sampled = sampled * mask.view(b, groups, 1, kk, h, w)
    return F.conv2d(sampled.reshape(b, c * kk, h, w), weight.reshape(weight.shape[0], c * kk, 1, 1), bias)


class ModulatedDeformConv2d(nn.Module):
    """DCNv2 layer (Eq. 4): ``torchvision.ops.deform_conv2d`` with explicit offset, mask and bias.

    Offsets and masks come from outside (Eq. 3), so this module only owns the kernel and bias.
    ``forward(x[B, C_in, h, w], offset[B, 2*G*k*k, h, w], mask[B, G*k*k, h, w]) -> [B, C_out, h, w]``.

    ``impl`` picks the kernel: ``"torchvision"`` (default; exported to ONNX ``DeformConv``) or
    ``"grid_sample"`` (:func:`deform_conv2d_grid_sample`, same numbers, much faster on CPU for eager
    training/inference). Switch a whole model with :func:`set_deform_conv_impl`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.padding = kernel_size // 2
        self.impl = "torchvision"
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        if self.impl == "grid_sample" and x.shape[-1] > 1 and x.shape[-2] > 1:
            return deform_conv2d_grid_sample(x, offset, self.weight, self.bias, mask)
        # Mask and bias always passed explicitly: the ONNX DeformConv mapping relies on both.
        return deform_conv2d(
            x, offset, self.weight, self.bias, stride=1, padding=self.padding, dilation=1, mask=mask
        )


def set_deform_conv_impl(module: nn.Module, impl: str) -> int:
    """Use ``impl`` ("torchvision" | "grid_sample") in every DCN layer of ``module``; returns how many."""
    if impl not in DEFORM_IMPLS:
        raise ValueError(f"deform conv impl must be one of {DEFORM_IMPLS}, got {impl!r}")
    layers = [m for m in module.modules() if isinstance(m, ModulatedDeformConv2d)]
    for m in layers:
        m.impl = impl
    return len(layers)


class OffsetMaskPredictor(nn.Module):
    """Eq. 3: residual blocks then a 3x3 conv on the stage motion feature D^j give offsets O^j and masks W^j.

    The paper writes "D -> residual blocks -> convolution -> O" (and W); offsets and masks share the
    blocks and come out of one conv, as DCNv2 implementations do. The conv is zero-initialised so
    training starts from a plain convolution (offsets 0, masks 0.5), the usual DCNv2 start.
    ``forward(d[B, C, h, w]) -> (offset[B, 2*G*k*k, h, w], mask[B, G*k*k, h, w])``.
    """

    def __init__(self, channels: int, deform_groups: int = 1, kernel_size: int = 3, res_blocks: int = 1) -> None:
        super().__init__()
        self.num_offsets = 2 * deform_groups * kernel_size * kernel_size
        self.blocks = nn.Sequential(*(BasicBlock(channels, channels) for _ in range(res_blocks)))
        self.conv = nn.Conv2d(channels, 3 * deform_groups * kernel_size * kernel_size, 3, 1, 1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, d: Tensor) -> tuple[Tensor, Tensor]:
        out = self.conv(self.blocks(d))
        return out[:, : self.num_offsets], torch.sigmoid(out[:, self.num_offsets :])


def pool_stage_features(features: Tensor, stride: int) -> Tensor:
    """``features[..., C, h, w]`` average-pooled by ``stride`` (any leading dims; identity when 1).

    The TDE's input rule. Pooling is per frame, so a runtime pools each frame's features once and
    reuses them in every window that reads the frame.
    """
    if stride == 1:
        return features
    return F.avg_pool2d(features.flatten(0, -4), stride).unflatten(0, features.shape[:-3])


class TemporalDifferenceEncoder(nn.Module):
    """TDE: window stage features ``[B, T, 4, C, h, w]`` -> motion feature ``M[B, C, h, w]``."""

    def __init__(self, cfg: TDEConfig) -> None:
        super().__init__()
        if len(cfg.res_blocks) != NUM_STAGES:
            raise ValueError(f"TDE needs {NUM_STAGES} residual-block counts, got {cfg.res_blocks}")
        self.cfg = cfg
        c, t = cfg.channels, cfg.num_frames
        # Eq. 2: Conv[(F_t - F_{t-1}) ⊕ (F_{t+1} - F_t) ...] -> residual blocks, one chain per stage.
        self.stage_fusion = nn.ModuleList(
            nn.Sequential(conv_bn_relu((t - 1) * c, c), *(BasicBlock(c, c) for _ in range(n)))
            for n in cfg.res_blocks
        )
        self.offset_mask = nn.ModuleList(
            OffsetMaskPredictor(c, cfg.deform_groups, res_blocks=cfg.offset_res_blocks) for _ in range(NUM_STAGES)
        )
        self.modulation = nn.ModuleList(ModulatedDeformConv2d(c, c) for _ in range(NUM_STAGES))
        self.accumulate = nn.ModuleList(
            nn.Sequential(*(conv_bn_relu(c, c) for _ in range(cfg.accum_convs))) for _ in range(NUM_STAGES)
        )

    def stage_motion(self, window: Tensor) -> list[Tensor]:
        """Eqs. 1-2: ``window[B, T, 4, C, h, w]`` -> per-stage motion features D^j ``[B, C, h, w]``."""
        diffs = temporal_differences(window)  # [B, T-1, S, C, h, w]
        b, n, s, c, h, w = diffs.shape
        out = []
        for j in range(s):
            stacked = diffs[:, :, j].reshape(b, n * c, h, w)  # time-ordered concatenation (⊕)
            out.append(self.stage_fusion[j](stacked))
        return out

    def pool(self, window: Tensor) -> Tensor:
        """The stage features the TDE reads: :func:`pool_stage_features` with this TDE's stride."""
        return pool_stage_features(window, self.cfg.stride)

    def encode(self, pooled: Tensor, out_hw: tuple[int, int]) -> Tensor:
        """Eqs. 1-5 on pooled stage features ``[B, T, 4, C, h/s, w/s]`` -> ``M[B, C, h, w]`` (``out_hw`` = (h, w))."""
        motion = None
        for j, d in enumerate(self.stage_motion(pooled)):
            offset, mask = self.offset_mask[j](d)  # Eq. 3
            d_bar = self.modulation[j](d, offset, mask)  # Eq. 4
            motion = d_bar if motion is None else motion + d_bar  # Eq. 5, progressive accumulation
            motion = self.accumulate[j](motion)
        assert motion is not None
        if self.cfg.stride > 1:
            motion = F.interpolate(motion, size=tuple(out_hw), mode="bilinear", align_corners=False)
        return motion

    def forward(self, window: Tensor) -> Tensor:
        """Eqs. 1-5: ``window[B, T, 4, C, h, w]`` -> ``M[B, C, h, w]``.

        With ``stride`` > 1 the differences are taken on average-pooled features and M is
        up-sampled back to ``h x w`` (a cheaper motion branch; not in the paper).
        """
        return self.encode(self.pool(window), tuple(window.shape[-2:]))
