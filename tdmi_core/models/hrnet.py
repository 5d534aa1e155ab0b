"""HRNet pose backbone whose state-dict keys match the official ``pose_hrnet.py`` checkpoints.

Module names and nesting follow the official COCO pose models (``conv1``, ``bn1``, ``conv2``,
``bn2``, ``layer1``, ``transitionN``, ``stageN.M.branches`` / ``fuse_layers``, ``final_layer``),
so ``pose_hrnet_w48_384x288.pth`` loads with ``strict=True``. Slots that hold ``None`` in the
official code are :class:`torch.nn.Identity` here: they own no parameters, so keys are
identical, and the forward pass needs no ``None`` checks (simpler to export).

For TDMI the backbone returns the 1/4-resolution branch of each of the 4 stages (C channels):
stage 1 is ``transition1[0](layer1(x))`` (the input of stage 2's first branch), stages 2-4 are
the first (highest-resolution) output of each stage, which already fuses the up-sampled lower
branches. ``final_layer`` maps the stage-4 feature to K heatmaps (the single-frame HRNet).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from tdmi_core.models.configs import HRNetConfig

BN_MOMENTUM = 0.1


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projected) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """1x1 - 3x3 - 1x1 bottleneck with 4x channel expansion."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def _projection(inplanes: int, outplanes: int, stride: int = 1) -> nn.Sequential | None:
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(
        nn.Conv2d(inplanes, outplanes, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(outplanes, momentum=BN_MOMENTUM),
    )


def make_basic_blocks(inplanes: int, planes: int, num_blocks: int) -> nn.Sequential:
    """``num_blocks`` BasicBlocks; the first projects ``inplanes`` to ``planes`` if they differ."""
    layers: list[nn.Module] = [BasicBlock(inplanes, planes, downsample=_projection(inplanes, planes))]
    layers += [BasicBlock(planes, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks followed by all-to-all multi-resolution fusion.

    ``fuse_layers[i][j]`` maps branch j to branch i: 1x1 conv + BN + nearest up-sampling when j > i,
    identity when j == i, a chain of stride-2 3x3 convs when j < i (as the official code).
    With ``multi_scale_output=False`` only branch 0's fused output is produced.
    """

    def __init__(self, channels: list[int], num_blocks: int, multi_scale_output: bool = True) -> None:
        super().__init__()
        self.num_branches = len(channels)
        self.branches = nn.ModuleList(make_basic_blocks(c, c, num_blocks) for c in channels)
        self.fuse_layers = self._make_fuse_layers(channels, multi_scale_output) if self.num_branches > 1 else None
        self.relu = nn.ReLU(inplace=False)

    @staticmethod
    def _make_fuse_layers(channels: list[int], multi_scale_output: bool) -> nn.ModuleList:
        n = len(channels)
        fuse_layers = nn.ModuleList()
        for i in range(n if multi_scale_output else 1):
            row = nn.ModuleList()
            for j in range(n):
                if j > i:
                    row.append(
                        nn.Sequential(
                            nn.Conv2d(channels[j], channels[i], 1, 1, 0, bias=False),
                            nn.BatchNorm2d(channels[i]),
                            nn.Upsample(scale_factor=float(2 ** (j - i)), mode="nearest"),
                        )
                    )
                elif j == i:
                    row.append(nn.Identity())
                else:
                    steps: list[nn.Module] = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out_ch = channels[i] if last else channels[j]
                        layers: list[nn.Module] = [
                            nn.Conv2d(channels[j], out_ch, 3, 2, 1, bias=False),
                            nn.BatchNorm2d(out_ch),
                        ]
                        if not last:
                            layers.append(nn.ReLU(inplace=False))
                        steps.append(nn.Sequential(*layers))
                    row.append(nn.Sequential(*steps))
            fuse_layers.append(row)
        return fuse_layers

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        """``xs[b]: [B, C_b, H/2**b, W/2**b]`` -> fused list (length 1 if not multi-scale)."""
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        fused = []
        for row in self.fuse_layers:
            y = row[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + row[j](xs[j])
            fused.append(self.relu(y))
        return fused


class HRNet(nn.Module):
    """HRNet pose network; ``forward`` returns the 4 stage features TDMI consumes.

    Args:
        cfg: architecture (width C, depth knobs, K joints).

    ``forward(crops[B, 3, H, W]) -> features[B, S=4, C, H/4, W/4]`` (stage order 1..4; ``[:, -1]``
    is the final stage feature that ``final_layer`` and the TDMI head use);
    ``forward_heatmaps(crops) -> heatmaps[B, K, H/4, W/4]`` is the plain single-frame HRNet.
    """

    def __init__(self, cfg: HRNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.width
        self.conv1 = nn.Conv2d(3, cfg.stem_channels, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cfg.stem_channels, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(cfg.stem_channels, cfg.stem_channels, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cfg.stem_channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        layer1_out = cfg.layer1_planes * Bottleneck.expansion
        blocks: list[nn.Module] = [
            Bottleneck(cfg.stem_channels, cfg.layer1_planes, downsample=_projection(cfg.stem_channels, layer1_out))
        ]
        blocks += [Bottleneck(layer1_out, cfg.layer1_planes) for _ in range(1, cfg.layer1_blocks)]
        self.layer1 = nn.Sequential(*blocks)

        pre = [layer1_out]
        for s, (modules, num_blocks) in enumerate(zip(cfg.stage_modules, cfg.stage_blocks), start=2):
            cur = [c * 2**b for b in range(s)]
            setattr(self, f"transition{s - 1}", self._make_transition(pre, cur))
            last_stage = s == 4
            stage = nn.Sequential(
                *(
                    HighResolutionModule(cur, num_blocks, multi_scale_output=not (last_stage and m == modules - 1))
                    for m in range(modules)
                )
            )
            setattr(self, f"stage{s}", stage)
            pre = cur
        k = cfg.final_conv_kernel
        self.final_layer = nn.Conv2d(c, cfg.num_joints, kernel_size=k, stride=1, padding=1 if k == 3 else 0)
        self._init_weights()

    @staticmethod
    def _make_transition(pre: list[int], cur: list[int]) -> nn.ModuleList:
        layers = nn.ModuleList()
        for i, out_ch in enumerate(cur):
            if i < len(pre):
                if pre[i] != out_ch:
                    layers.append(
                        nn.Sequential(
                            nn.Conv2d(pre[i], out_ch, 3, 1, 1, bias=False),
                            nn.BatchNorm2d(out_ch),
                            nn.ReLU(inplace=True),
                        )
                    )
                else:
                    layers.append(nn.Identity())
            else:
                # New lower-resolution branch(es) grow from the previous stage's lowest branch.
                steps = []
                for j in range(i + 1 - len(pre)):
                    step_out = out_ch if j == i - len(pre) else pre[-1]
                    steps.append(
                        nn.Sequential(
                            nn.Conv2d(pre[-1], step_out, 3, 2, 1, bias=False),
                            nn.BatchNorm2d(step_out),
                            nn.ReLU(inplace=True),
                        )
                    )
                layers.append(nn.Sequential(*steps))
        return layers

    def _init_weights(self) -> None:
        # Official initialisation: N(0, 0.001) convs, unit BatchNorm.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _transition(transition: nn.ModuleList, ys: list[Tensor]) -> list[Tensor]:
        return [t(ys[i] if i < len(ys) else ys[-1]) for i, t in enumerate(transition)]

    def stage_features(self, crops: Tensor) -> list[Tensor]:
        """``crops[B, 3, H, W]`` -> 4 tensors ``[B, C, H/4, W/4]`` (stages 1..4)."""
        x = self.relu(self.bn1(self.conv1(crops)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        xs = self._transition(self.transition1, [x])
        feats = [xs[0]]
        ys = self.stage2(xs)
        feats.append(ys[0])
        ys = self.stage3(self._transition(self.transition2, ys))
        feats.append(ys[0])
        ys = self.stage4(self._transition(self.transition3, ys))
        feats.append(ys[0])
        return feats

    def forward(self, crops: Tensor) -> Tensor:
        """``crops[B, 3, H, W]`` (RGB, ImageNet-normalised) -> ``features[B, 4, C, H/4, W/4]``."""
        if crops.dim() != 4 or crops.shape[1] != 3:
            raise ValueError(f"HRNet expects crops [B, 3, H, W], got shape {tuple(crops.shape)}")
        return torch.stack(self.stage_features(crops), dim=1)

    def forward_heatmaps(self, crops: Tensor) -> Tensor:
        """Single-frame HRNet: ``crops[B, 3, H, W]`` -> ``heatmaps[B, K, H/4, W/4]``."""
        return self.final_layer(self.stage_features(crops)[-1])
