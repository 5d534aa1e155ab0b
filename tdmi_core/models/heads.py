"""Heads: fuse the useful motion feature with a visual feature and predict K heatmaps.

TDMI (paper Sec. 3.2 "Heatmap generation"): F~ = ResBlocks(Conv[M_u ⊕ F_t^4]); H = Conv3x3(F~).
TDMI-ST (Sec. 4.2): the key frame's visual feature is replaced by a spatiotemporal feature of the
whole window (:class:`SpatioTemporalFeature`, a conv over the T frames' stage-4 features).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from tdmi_core.models.hrnet import BasicBlock
from tdmi_core.models.tde import conv_bn_relu


class SpatioTemporalFeature(nn.Module):
    """TDMI-ST visual feature: ``final[B, T, C, h, w]`` (stage-4 features of the window) -> ``[B, C, h, w]``."""

    def __init__(self, channels: int, num_frames: int) -> None:
        super().__init__()
        self.reduce = conv_bn_relu(num_frames * channels, channels)
        self.block = BasicBlock(channels, channels)

    def forward(self, final: Tensor) -> Tensor:
        b, t, c, h, w = final.shape
        return self.block(self.reduce(final.reshape(b, t * c, h, w)))


class PoseHead(nn.Module):
    """``forward(useful[B, C, h, w], visual[B, C, h, w]) -> (heatmaps[B, K, h, w], fused F~[B, C, h, w])``."""

    def __init__(self, channels: int, num_keypoints: int, res_blocks: int = 2) -> None:
        super().__init__()
        self.fuse = nn.Sequential(
            conv_bn_relu(2 * channels, channels), *(BasicBlock(channels, channels) for _ in range(res_blocks))
        )
        self.final_layer = nn.Conv2d(channels, num_keypoints, kernel_size=3, stride=1, padding=1)
        # Small start as HRNet's final layer: heatmap targets are in [0, 1] and mostly 0.
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, useful: Tensor, visual: Tensor) -> tuple[Tensor, Tensor]:
        fused = self.fuse(torch.cat([useful, visual], dim=1))
        return self.final_layer(fused), fused
