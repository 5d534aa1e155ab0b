"""Representation Disentanglement Module (RDM), paper Sec. 3.2, Eq. 6.

M_u = sigmoid(MLP_u(GAP(M))) ⊙ M and M_n = sigmoid(MLP_n(GAP(M))) ⊙ M, with independently
learned MLPs (C -> hidden -> C). The mutual-information objective that makes the two parts
differ (Eqs. 7-13) lives in :mod:`tdmi_core.train.losses`.
"""
from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn


class Disentangled(NamedTuple):
    """RDM outputs: ``useful``/``noisy`` ``[B, C, h, w]``, ``gate_u``/``gate_n`` ``[B, C]`` in (0, 1)."""

    useful: Tensor
    noisy: Tensor
    gate_u: Tensor
    gate_n: Tensor


def channel_mlp(channels: int, hidden: int) -> nn.Sequential:
    """C -> hidden -> C MLP with ReLU, producing gate logits."""
    return nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))


class RepresentationDisentanglement(nn.Module):
    """``forward(M[B, C, h, w]) -> Disentangled(M_u, M_n, gate_u, gate_n)`` (Eq. 6)."""

    def __init__(self, channels: int, hidden: int = 128) -> None:
        super().__init__()
        self.mlp_u = channel_mlp(channels, hidden)
        self.mlp_n = channel_mlp(channels, hidden)

    def forward(self, motion: Tensor) -> Disentangled:
        pooled = motion.mean(dim=(2, 3))  # GAP -> channel descriptor [B, C]
        gate_u = self.mlp_u(pooled).sigmoid()
        gate_n = self.mlp_n(pooled).sigmoid()
        useful = motion * gate_u[:, :, None, None]
        noisy = motion * gate_n[:, :, None, None]
        return Disentangled(useful, noisy, gate_u, gate_n)
