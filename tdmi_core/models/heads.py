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
    """``forward(useful[B, C, h, w], visual[B, C, h, w]) -> (heatmaps[B, K, h, w], fused F~[B, C, h, w])``.

    Args:
        final_layer: the module mapping F~ to K heatmaps; default a 3x3 conv (the paper's "detection
            head"), MoveNet models pass MoveNet's keypoint head.
        visual_skip: F~ = F_t + fuse(...) with the fusion's last BatchNorm zero-initialised, so an
            untrained temporal head reproduces the single-frame model it starts from.
        activation: "sigmoid" for heads trained as MoveNet's (logits), else none.
    """

    def __init__(
        self,
        channels: int,
        num_keypoints: int,
        res_blocks: int = 2,
        final_layer: nn.Module | None = None,
        visual_skip: bool = False,
        activation: str = "none",
    ) -> None:
        super().__init__()
        layers = [conv_bn_relu(2 * channels, channels), *(BasicBlock(channels, channels) for _ in range(res_blocks))]
        if visual_skip:
            # A trailing 1x1 conv-BN (no ReLU) whose zero gamma makes the residual start at exactly 0.
            tail = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
            nn.init.zeros_(tail[1].weight)
            layers.append(tail)
        self.fuse = nn.Sequential(*layers)
        self.visual_skip = visual_skip
        self.activation = activation
        if final_layer is None:
            final_layer = nn.Conv2d(channels, num_keypoints, kernel_size=3, stride=1, padding=1)
            # Small start as HRNet's final layer: heatmap targets are in [0, 1] and mostly 0.
            nn.init.normal_(final_layer.weight, std=0.001)
            nn.init.zeros_(final_layer.bias)
        self.final_layer = final_layer

    def forward(self, useful: Tensor, visual: Tensor) -> tuple[Tensor, Tensor]:
        fused = self.fuse(torch.cat([useful, visual], dim=1))
        if self.visual_skip:
            fused = visual + fused
        heatmaps = self.final_layer(fused)
        if self.activation == "sigmoid":
            heatmaps = torch.sigmoid(heatmaps)
        return heatmaps, fused
