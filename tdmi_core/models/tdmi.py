"""The TDMI network, split into a per-frame backbone and a per-window temporal head.

``model.backbone(crops[B, 3, H, W]) -> features[B, 4, C, h, w]`` runs once per frame and person;
``model.temporal_head(window[B, 2δ+1, 4, C, h, w]) -> heatmaps[B, K, h, w]`` runs once per window.
A streaming runtime keeps each frame's features and reuses them across the 2δ+1 windows that
contain the frame; ``model(frames[B, T, 3, H, W])`` composes the two (same numbers). The head reads
a window twice: pooled stage features for the TDE and the final-stage features of some frames for
the visual feature; ``temporal_head.split_inputs`` / ``forward_split`` take the two apart so a
runtime pools each frame once and passes only the frames the visual feature reads (same numbers).
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import torch
from torch import Tensor, nn

from tdmi_core.models.configs import NUM_STAGES, ModelConfig
from tdmi_core.models.heads import PoseHead, SpatioTemporalFeature
from tdmi_core.models.hrnet import HRNet
from tdmi_core.models.movenet import KeypointHead, MoveNetBackbone
from tdmi_core.models.rdm import RepresentationDisentanglement
from tdmi_core.models.tde import TemporalDifferenceEncoder

_logger = logging.getLogger(__name__)


class TemporalHeadOutput(NamedTuple):
    """Everything the temporal head computes for one window (all ``[B, C, h, w]`` unless noted).

    Attributes:
        heatmaps: ``[B, K, h, w]`` pose heatmaps H_t of the key frame.
        motion: M_t, the TDE output (Eq. 5).
        useful: M_{t,u} (Eq. 6); noisy: M_{t,n} (Eq. 6).
        visual: the visual feature fused with M_u: the key frame's stage-4 feature F_t (TDMI) or
            the window's spatiotemporal feature (TDMI-ST).
        fused: F~_t, the enhanced representation fed to the final 3x3 conv.
        gate_u, gate_n: ``[B, C]`` RDM channel gates.
    """

    heatmaps: Tensor
    motion: Tensor
    useful: Tensor
    noisy: Tensor
    visual: Tensor
    fused: Tensor
    gate_u: Tensor
    gate_n: Tensor


class TemporalHead(nn.Module):
    """TDE + RDM + pose head over the stage features of one window.

    ``forward(window[B, T=2δ+1, S=4, C, h, w], return_aux=False)`` returns ``heatmaps[B, K, h, w]``
    or, with ``return_aux=True``, a :class:`TemporalHeadOutput`. The key frame is ``window[:, δ]``
    (``window[:, 2δ]`` for a causal model: ``cfg.key_index``).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.width
        self.tde = TemporalDifferenceEncoder(cfg.tde_config())
        self.rdm = RepresentationDisentanglement(c, cfg.rdm_hidden)
        self.spatiotemporal = SpatioTemporalFeature(c, cfg.num_frames) if cfg.head == "tdmi_st" else None
        final_layer = KeypointHead(c, 96, cfg.num_keypoints) if cfg.backbone == "movenet" else None
        self.head = PoseHead(c, cfg.num_keypoints, cfg.head_res_blocks, final_layer=final_layer,
                             visual_skip=cfg.head_visual_skip, activation=cfg.heatmap_activation)

    def _check(self, window: Tensor) -> None:
        cfg = self.cfg
        expected = (cfg.num_frames, NUM_STAGES, cfg.width, *cfg.heatmap_size_hw)
        if window.dim() != 6 or tuple(window.shape[1:]) != expected:
            raise ValueError(
                f"temporal_head of {cfg.name!r} expects window [B, {', '.join(map(str, expected))}] "
                f"(2*delta+1 frames of backbone(crops) output, time order, key frame at index {cfg.key_index}); "
                f"got {tuple(window.shape)}"
            )

    @property
    def visual_frames(self) -> list[int]:
        """Window frames whose final-stage features the visual feature reads: all (TDMI-ST) or the key frame."""
        return self.cfg.visual_frames

    def split_inputs(self, window: Tensor) -> tuple[Tensor, Tensor]:
        """``window[B, T, 4, C, h, w]`` -> (pooled stage features ``[B, T, 4, C, h/s, w/s]`` for the TDE,
        final-stage features of :attr:`visual_frames` ``[B, V, C, h, w]``)."""
        return self.tde.pool(window), window[:, self.visual_frames, -1]

    def forward(self, window: Tensor, return_aux: bool = False) -> Tensor | TemporalHeadOutput:
        self._check(window)
        return self.forward_split(*self.split_inputs(window), return_aux=return_aux)

    def forward_split(self, motion_window: Tensor, visual_window: Tensor,
                      return_aux: bool = False) -> Tensor | TemporalHeadOutput:
        """The head on :meth:`split_inputs`' two parts (what runtimes call; the same numbers as ``forward``)."""
        motion = self.tde.encode(motion_window, tuple(visual_window.shape[-2:]))
        parts = self.rdm(motion)
        if self.spatiotemporal is not None:
            visual = self.spatiotemporal(visual_window)
        else:
            visual = visual_window[:, 0]  # key frame's final-stage feature F_t^4
        heatmaps, fused = self.head(parts.useful, visual)
        if not return_aux:
            return heatmaps
        return TemporalHeadOutput(
            heatmaps, motion, parts.useful, parts.noisy, visual, fused, parts.gate_u, parts.gate_n
        )


class TDMI(nn.Module):
    """TDMI / TDMI-ST: ``backbone`` (stage features) + ``temporal_head``.

    ``forward(frames[B, T, 3, H, W], return_aux=False)`` = ``temporal_head`` of the per-frame
    ``backbone`` features. With ``cfg.freeze_backbone`` the backbone parameters do not require grad
    and its BatchNorm layers stay in eval mode even under ``model.train()``. The backbone's own
    single-frame heatmap layer (HRNet's ``final_layer``, MoveNet's ``keypoint_head``) never requires
    grad here: TDMI does not use it (single-frame pre-training does).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.backbone == "movenet":
            self.backbone: HRNet | MoveNetBackbone = MoveNetBackbone(cfg.num_keypoints)
            single_frame_layer: nn.Module = self.backbone.keypoint_head
        else:
            self.backbone = HRNet(cfg.hrnet_config())
            single_frame_layer = self.backbone.final_layer
        self.temporal_head = TemporalHead(cfg)
        # Kept for checkpoint compatibility and single-frame pre-training, unused by TDMI: not trained.
        single_frame_layer.requires_grad_(False)
        if cfg.freeze_backbone:
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> "TDMI":
        super().train(mode)
        if self.cfg.freeze_backbone:
            self.backbone.eval()  # frozen BatchNorm statistics
        return self

    def forward(self, frames: Tensor, return_aux: bool = False) -> Tensor | TemporalHeadOutput:
        cfg = self.cfg
        if frames.dim() != 5 or frames.shape[1] != cfg.num_frames or frames.shape[2] != 3:
            raise ValueError(
                f"TDMI {cfg.name!r} expects frames [B, {cfg.num_frames}, 3, H, W] (time order, key frame at "
                f"index {cfg.key_index}); got {tuple(frames.shape)}"
            )
        b, t = frames.shape[:2]
        features = self.backbone(frames.flatten(0, 1))  # [B*T, S, C, h, w]
        return self.temporal_head(features.unflatten(0, (b, t)), return_aux=return_aux)


def build_model(cfg: ModelConfig) -> TDMI:
    """Build an (untrained) TDMI network for ``cfg``."""
    model = TDMI(cfg)
    _logger.debug("built %s: %d parameters", cfg.name, count_parameters(model))
    return model


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module`` (optionally only those that require grad)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def backbone_features_in_chunks(model: TDMI, crops: Tensor, chunk: int = 16) -> Tensor:
    """Backbone features for many crops in chunks (bounded memory): ``[N, 3, H, W] -> [N, 4, C, h, w]``."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return torch.cat([model.backbone(crops[i : i + chunk]) for i in range(0, crops.shape[0], chunk)], dim=0)
