"""TDMI training loss: heatmap MSE (Eq. 14) + alpha * mutual-information objective (Eqs. 7-13, 15).

Mutual information with Variational Self-Distillation (VSD, Tian et al., CVPR 2021)
-----------------------------------------------------------------------------------
VSD never estimates I(x; y) directly. It attaches a predictor to each representation, reads
its predictive distribution of the label P_x = p(y | x), and uses

    I(v; y | z)  =  I(v; y) - I(z; y)   ≈   KL(P_v || P_z)            (z computed from v)

with the teacher distribution P_v detached. For pose, the label y is the location of each
keypoint, so a predictor is a 3x3 conv to K heatmap logits and P_x is the softmax over the
h*w positions of each keypoint's map (:func:`spatial_log_softmax`). Every term of the TDMI
objective is evaluated through these predictive distributions:

* conditional terms of Eq. 10, two forms (``mi_form``):
  - ``"paper"`` (default), Eqs. 11-12 as the paper writes them:
        I(M_u; y | F~) -> I(M_u; y) - I(M_u; F~),    I(F; y | F~) -> I(F; y) - I(F; F~)
    with I(x; y) = H(y) - CE(y, P_x) (the variational bound; H(y) is a constant and dropped) and
    I(a; F~) = Î(a; F~) below.
  - ``"vsd"``, VSD's own form of the conditional term, which is a different quantity:
        I(v; y | z) = I(v; y) - I(z; y)  ≈  KL(P_v || P_z)   (P_v detached)
* feature-feature terms (Eqs. 8-9): two representations share task information when they
  predict the same label distribution, so (as VSD's mutual-learning term, with the bounded
  Jensen-Shannon divergence)
      Î(a; b) = log 2 - JS(P_a, P_b)   in [0, log 2]
  grows with the information a and b share about y; min Î(M_u; M_n) pushes the noisy part's
  prediction away from the useful part's, max Î(M; M_u) keeps M's task information in M_u.

So (Eq. 13 with its typo fixed: the second term is -I(M; M_u), Eq. 9)
      paper:  L_MI = Î(M_u; M_n) - Î(M; M_u) + [-CE(y, P_{M_u}) - Î(M_u; F~)] + [-CE(y, P_F) - Î(F; F~)]
      vsd:    L_MI = Î(M_u; M_n) - Î(M; M_u) + KL(P_{M_u} || P_{F~}) + KL(P_F || P_{F~}).

Scale: every divergence and cross-entropy is divided by the number of heatmap positions h*w
(the element-wise mean of torch's ``reduction="mean"``), which puts L_MI on the scale of the
per-pixel heatmap MSE so the paper's alpha = 1 balances the two; unnormalised nats per keypoint
would outweigh the MSE by ~10^4 at 96x72.

The predictors are trained only by cross-entropy to the target keypoint distribution on
*detached* features (so they estimate p(y | x) and do not supervise the network themselves),
and the MI terms use the predictors with *detached* parameters (so the network, not the
estimator, is what the MI terms change). KL is computed from log-probabilities on both sides
(``F.kl_div(log_q, log_p, log_target=True)``), unlike the sibling code's ``kl_div`` on
probabilities, which is not a divergence.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tdmi_core.models.configs import ModelConfig
from tdmi_core.skeleton import NUM_KEYPOINTS

LOG2 = math.log(2.0)
MI_FORMS: tuple[str, ...] = ("paper", "vsd")


def spatial_log_softmax(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Per-keypoint log-distribution over positions: ``[B, K, h, w] -> [B, K, h*w]``."""
    return F.log_softmax(logits.flatten(2) / temperature, dim=-1)


def kl_divergence(log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(p || q) over the last axis from log-probabilities: ``[..., N], [..., N] -> [...]``.

    ``F.kl_div(input, target)`` computes sum target * (log target - input), i.e. KL(target || input)
    with ``input`` as log-probabilities; ``log_target=True`` takes ``target`` as log-probabilities.
    """
    return F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(dim=-1)


def js_divergence(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Jensen-Shannon divergence over the last axis, in [0, log 2]: ``[..., N], [..., N] -> [...]``."""
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - LOG2
    return 0.5 * (kl_divergence(log_p, log_m) + kl_divergence(log_q, log_m))


def vsd_shared_information(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Î(a; b) = log 2 - JS(P_a, P_b): label information shared by two representations, in [0, log 2]."""
    return LOG2 - js_divergence(log_p, log_q)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values[B, K]`` over entries where ``mask[B, K]``; 0 (with graph) if none."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


class KeypointPredictor(nn.Module):
    """Variational predictor p(y | x): ``x[B, C, h, w] -> logits[B, K, h, w]`` (a 3x3 conv).

    ``forward(x, detach_params=True)`` uses the weights without gradient, so a loss term trains
    the representation ``x`` but not the estimator.
    """

    def __init__(self, channels: int, num_keypoints: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, num_keypoints, kernel_size=3, padding=1)

    def forward(self, x: Tensor, detach_params: bool = False) -> Tensor:
        w, b = self.conv.weight, self.conv.bias
        if detach_params:
            w, b = w.detach(), b.detach()
        return F.conv2d(x, w, b, padding=1)


class VSDEstimator(nn.Module):
    """VSD mutual-information terms over predictive keypoint distributions.

    One predictor per feature space: ``motion`` (M, M_u, M_n -- M_u and M_n are channel-rescaled
    M), ``visual`` (F, the key frame's or spatiotemporal feature) and ``fused`` (F~).
    """

    SPACES = ("motion", "visual", "fused")

    def __init__(self, channels: int, num_keypoints: int, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"VSD temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.predictors = nn.ModuleDict({s: KeypointPredictor(channels, num_keypoints) for s in self.SPACES})

    def log_probs(self, x: Tensor, space: str, detach_params: bool = True) -> Tensor:
        """``x[B, C, h, w]`` -> ``log p(y | x)[B, K, h*w]`` with the predictor of ``space``."""
        return spatial_log_softmax(self.predictors[space](x, detach_params=detach_params), self.temperature)

    def shared_information(self, a: Tensor, b: Tensor, space_a: str, space_b: str | None = None) -> Tensor:
        """Î(a; b) per sample and keypoint ``[B, K]`` (gradients reach ``a`` and ``b``)."""
        return vsd_shared_information(self.log_probs(a, space_a), self.log_probs(b, space_b or space_a))

    def conditional_information(self, v: Tensor, z: Tensor, space_v: str, space_z: str) -> Tensor:
        """VSD's I(v; y | z) ≈ KL(P_v || P_z) per sample and keypoint ``[B, K]``; P_v is the detached teacher."""
        return kl_divergence(self.log_probs(v, space_v).detach(), self.log_probs(z, space_z))

    def cross_entropy(self, x: Tensor, space: str, target_log_probs: Tensor) -> Tensor:
        """CE(y, P_x) per sample and keypoint ``[B, K]`` with detached predictor parameters (gradients reach ``x``)."""
        return -(target_log_probs.exp() * self.log_probs(x, space)).sum(dim=-1)

    def predictor_loss(self, features: dict[str, list[Tensor]], target_log_probs: Tensor, valid: Tensor) -> Tensor:
        """Cross-entropy of each predictor on detached features vs the target keypoint distribution.

        Args:
            features: space -> list of ``[B, C, h, w]`` features of that space.
            target_log_probs: ``[B, K, h*w]`` log of the normalised target heatmaps.
            valid: ``[B, K]`` bool, joints with a visible, non-empty target.
        """
        target = target_log_probs.exp()
        losses = []
        for space, feats in features.items():
            for x in feats:
                log_q = self.log_probs(x.detach(), space, detach_params=False)
                ce = -(target * log_q).sum(dim=-1)
                losses.append(_masked_mean(ce, valid))
        return torch.stack(losses).mean()


def heatmap_mse(pred: Tensor, target: Tensor, target_weight: Tensor | None) -> Tensor:
    """Eq. 14 as HRNet's JointsMSELoss: mean over B, K, h, w of 0.5 * (w_k * (H - G))^2."""
    if target_weight is not None:
        w = target_weight[:, :, None, None].to(pred.dtype)
        pred, target = pred * w, target * w
    return 0.5 * F.mse_loss(pred, target)


class TDMILoss(nn.Module):
    """L_total = L_H + alpha * L_MI (Eq. 15), with the VSD predictors as its own parameters.

    Args:
        cfg: the model config (channels C, K keypoints), or C as an int (then ``num_keypoints``).
        alpha: weight of the MI objective (paper: 1).
        temperature: softmax temperature of the predictive distributions.
        num_keypoints: K when ``cfg`` is an int.
        mi_form: "paper" (Eqs. 11-12 as written) or "vsd" (VSD's KL form); see the module docstring.

    ``forward(aux, target_heatmaps[B, K, h, w], target_weight[B, K]) -> dict`` with scalar tensors
    ``total, heatmap, mi`` and the parts ``mi_useful_noisy, mi_motion_useful, mi_useful_label,
    mi_visual_label, vsd_predictor`` (all divided by h*w, see the module docstring).
    ``aux`` is ``model.temporal_head(window, return_aux=True)``. The trainer must optimise the model
    and this loss's parameters together.
    """

    _AUX_FIELDS = ("heatmaps", "motion", "useful", "noisy", "visual", "fused")

    def __init__(
        self,
        cfg: ModelConfig | int,
        alpha: float = 1.0,
        temperature: float = 1.0,
        num_keypoints: int = NUM_KEYPOINTS,
        mi_form: str = "paper",
    ) -> None:
        super().__init__()
        if mi_form not in MI_FORMS:
            raise ValueError(f"mi_form must be one of {MI_FORMS}, got {mi_form!r}")
        self.mi_form = mi_form
        channels, k = (cfg.width, cfg.num_keypoints) if isinstance(cfg, ModelConfig) else (int(cfg), num_keypoints)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.vsd = VSDEstimator(channels, k, temperature)

    def _check(self, aux: Any, target: Tensor, weight: Tensor | None) -> None:
        missing = [f for f in self._AUX_FIELDS if not hasattr(aux, f)]
        if missing:
            raise TypeError(
                f"TDMILoss needs the temporal head's aux output (model.temporal_head(window, return_aux=True)); "
                f"got {type(aux).__name__} without {missing}"
            )
        if target.shape != aux.heatmaps.shape:
            raise ValueError(f"target heatmaps {tuple(target.shape)} != predicted {tuple(aux.heatmaps.shape)}")
        if weight is not None and tuple(weight.shape) not in (tuple(target.shape[:2]), (*target.shape[:2], 1)):
            raise ValueError(f"target_weight must be [B, K] (or [B, K, 1]), got {tuple(weight.shape)}")

    def forward(self, aux: Any, target_heatmaps: Tensor, target_weight: Tensor | None = None) -> dict[str, Tensor]:
        self._check(aux, target_heatmaps, target_weight)
        if target_weight is not None and target_weight.dim() == 3:
            target_weight = target_weight[..., 0]
        heat = heatmap_mse(aux.heatmaps, target_heatmaps, target_weight)

        mass = target_heatmaps.flatten(2).clamp_min(0).sum(-1)  # [B, K]
        valid = mass > 1e-6
        if target_weight is not None:
            valid = valid & (target_weight > 0)
        target_log_probs = torch.log(target_heatmaps.flatten(2).clamp_min(0) / mass.clamp_min(1e-6)[..., None] + 1e-12)

        v = self.vsd
        positions = float(target_heatmaps.shape[-2] * target_heatmaps.shape[-1])
        useful_noisy = v.shared_information(aux.useful, aux.noisy, "motion").mean()  # Eq. 8 (min)
        motion_useful = v.shared_information(aux.motion, aux.useful, "motion").mean()  # Eq. 9 (max)
        if self.mi_form == "paper":
            useful_label = _masked_mean(
                -v.cross_entropy(aux.useful, "motion", target_log_probs)
                - v.shared_information(aux.useful, aux.fused, "motion", "fused"), valid)
            visual_label = _masked_mean(
                -v.cross_entropy(aux.visual, "visual", target_log_probs)
                - v.shared_information(aux.visual, aux.fused, "visual", "fused"), valid)
        else:
            useful_label = _masked_mean(v.conditional_information(aux.useful, aux.fused, "motion", "fused"), valid)
            visual_label = _masked_mean(v.conditional_information(aux.visual, aux.fused, "visual", "fused"), valid)
        # Eq. 13 (with Eqs. 10-12), per heatmap position (see the module docstring on scale).
        useful_noisy, motion_useful = useful_noisy / positions, motion_useful / positions
        useful_label, visual_label = useful_label / positions, visual_label / positions
        mi = useful_noisy - motion_useful + useful_label + visual_label
        predictor = v.predictor_loss(
            {"motion": [aux.motion, aux.useful], "visual": [aux.visual], "fused": [aux.fused]}, target_log_probs, valid
        ) / positions
        total = heat + self.alpha * mi + predictor
        return {
            "total": total,
            "heatmap": heat,
            "mi": mi,
            "mi_useful_noisy": useful_noisy,
            "mi_motion_useful": motion_useful,
            "mi_useful_label": useful_label,
            "mi_visual_label": visual_label,
            "vsd_predictor": predictor,
        }


def heatmap_peaks(heatmaps: Tensor) -> Tensor:
    """Differentiable sub-pixel peaks ``[..., K, 2]`` (x, y in heatmap px) of ``heatmaps[..., K, h, w]``.

    The arg-max refined by one Newton step on the log heatmap (DARK, Zhang et al. CVPR 2020), exact for
    a Gaussian peak; the step is limited to one pixel, and left out where the log heatmap is not
    locally concave (flat or saddle maps early in training). It is the torch (differentiable) twin of
    :func:`tdmi_core.codec.refine_dark`, which decodes at run time, without its smoothing; a peak on
    the border is stepped from its inner neighbour instead of kept.
    """
    h, w = heatmaps.shape[-2:]
    log_map = heatmaps.clamp_min(1e-6).log().flatten(-2)
    peak = log_map.detach().argmax(-1)
    x0, y0 = (peak % w).clamp(1, w - 2), torch.div(peak, w, rounding_mode="floor").clamp(1, h - 2)

    def at(dx: int, dy: int) -> Tensor:
        return log_map.gather(-1, ((y0 + dy) * w + x0 + dx)[..., None])[..., 0]

    centre = at(0, 0)
    gx, gy = 0.5 * (at(1, 0) - at(-1, 0)), 0.5 * (at(0, 1) - at(0, -1))
    hxx, hyy = at(1, 0) - 2 * centre + at(-1, 0), at(0, 1) - 2 * centre + at(0, -1)
    hxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = hxx * hyy - hxy * hxy
    concave = (hxx < -1e-3) & (det > 1e-6)
    safe_det = torch.where(concave, det, torch.ones_like(det))
    step_x = -(hyy * gx - hxy * gy) / safe_det
    step_y = -(hxx * gy - hxy * gx) / safe_det
    zero = torch.zeros_like(step_x)
    step_x = torch.where(concave, step_x, zero).clamp(-1, 1)
    step_y = torch.where(concave, step_y, zero).clamp(-1, 1)
    return torch.stack([x0 + step_x, y0 + step_y], -1)


def window_pair_velocity_loss(heatmaps: Tensor, keypoints: Tensor, weight: Tensor) -> Tensor:
    """How far the motion between two consecutive key frames' predictions is from the teacher's.

    Args:
        heatmaps: ``[B, 2, K, h, w]`` predictions of the windows with key frames t and t + 1.
        keypoints: ``[B, 2, K, 2]`` teacher joints of both key frames in heatmap px (one crop frame).
        weight: ``[B, 2, K]``; a joint counts when it has a target in both frames.

    Returns the weighted mean smooth-L1 (beta 1 heatmap px) of predicted minus teacher displacement.
    Per-frame heatmap losses leave each frame's error independent, which shows as jitter; this term
    asks the error to be the same in consecutive frames.
    """
    xy = heatmap_peaks(heatmaps)
    error = (xy[:, 1] - xy[:, 0]) - (keypoints[:, 1] - keypoints[:, 0])
    per_joint = F.smooth_l1_loss(error, torch.zeros_like(error), reduction="none", beta=1.0).sum(-1)
    both = weight[:, 0] * weight[:, 1]
    return (per_joint * both).sum() / both.sum().clamp_min(1.0)
