"""TDMI loss: correct KL/JS, VSD estimator ranks known MI orderings, gradients, tiny overfit."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tdmi_core.models import build_model, load_model_config
from tdmi_core.train.losses import (
    TDMILoss,
    VSDEstimator,
    heatmap_mse,
    js_divergence,
    kl_divergence,
    spatial_log_softmax,
    vsd_shared_information,
)

torch.set_num_threads(1)  # 2 shared cores: one OpenMP thread avoids oversubscription stalls


def test_kl_matches_definition_and_is_a_divergence() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 10, generator=g) * 2, torch.randn(6, 10, generator=g) * 2
    log_p, log_q = a.log_softmax(-1), b.log_softmax(-1)
    manual = (log_p.exp() * (log_p - log_q)).sum(-1)
    torch.testing.assert_close(kl_divergence(log_p, log_q), manual)
    assert (kl_divergence(log_p, log_q) > 0).all()
    torch.testing.assert_close(kl_divergence(log_p, log_p), torch.zeros(6), atol=1e-6, rtol=0)
    # The sibling code's kl_div on probabilities is not a divergence: it goes negative here.
    buggy = F.kl_div(a.softmax(-1), b.softmax(-1), reduction="none").sum(-1)
    assert (buggy < 0).any() and not torch.allclose(buggy, manual)


def test_js_bounds() -> None:
    log_p = torch.tensor([[0.0, -100.0]]).log_softmax(-1)
    log_q = torch.tensor([[-100.0, 0.0]]).log_softmax(-1)
    assert js_divergence(log_p, log_q).item() == pytest.approx(math.log(2), abs=1e-5)  # disjoint supports
    assert js_divergence(log_p, log_p).item() == pytest.approx(0.0, abs=1e-6)
    x = torch.randn(50, 7).log_softmax(-1)
    y = torch.randn(50, 7).log_softmax(-1)
    js = js_divergence(x, y)
    assert (js >= 0).all() and (js <= math.log(2)).all()
    torch.testing.assert_close(js, js_divergence(y, x))


def _correlated(rho: float, shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x ~ N(0, I), z = rho x + sqrt(1 - rho^2) e: I(x; z) = -d/2 log(1 - rho^2) grows with rho."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    e = torch.randn(shape, generator=g)
    return x, rho * x + math.sqrt(1 - rho * rho) * e


def test_vsd_estimates_rank_gaussian_pairs_by_true_mutual_information() -> None:
    torch.manual_seed(0)
    est = VSDEstimator(channels=16, num_keypoints=4)
    with torch.no_grad():
        est.predictors["motion"].conv.weight.normal_(std=0.5)
    rhos = [0.0, 0.3, 0.6, 0.9, 0.99]
    shared, conditional = [], []
    with torch.no_grad():
        for rho in rhos:
            x, z = _correlated(rho, (64, 16, 8, 8), seed=1)
            shared.append(est.shared_information(x, z, "motion").mean().item())
            conditional.append(est.conditional_information(x, z, "motion", "motion").mean().item())
        same = est.shared_information(x, x, "motion").mean().item()
    # More shared information -> higher Î(x; z) and lower KL(P_x || P_z) (information lost from x to z).
    assert shared == sorted(shared) and len(set(shared)) == len(shared), shared
    assert conditional == sorted(conditional, reverse=True), conditional
    assert same == pytest.approx(math.log(2), abs=1e-5)
    assert 0 <= shared[0] < same


def _bump_features(pos: torch.Tensor, hw: int, channels: int, noise: float, g: torch.Generator) -> torch.Tensor:
    """Features whose first K channels carry a bump at each keypoint position, plus noise."""
    b, k = pos.shape
    feats = noise * torch.randn(b, channels, hw * hw, generator=g)
    feats[:, :k].scatter_add_(2, pos[..., None], torch.full((b, k, 1), 4.0))
    return feats.view(b, channels, hw, hw)


def test_vsd_conditional_term_detects_lost_label_information() -> None:
    """I(v; y | z) ≈ KL(P_v || P_z) is large when z lost the keypoint location, small when z kept it."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    b, k, hw, c = 48, 2, 8, 6
    pos = torch.randint(0, hw * hw, (b, k), generator=g)
    target = F.one_hot(pos, hw * hw).float() * 0.9 + 0.1 / (hw * hw)
    v = _bump_features(pos, hw, c, 0.1, g)
    z_kept = _bump_features(pos, hw, c, 0.3, g)
    z_lost = _bump_features(torch.randint(0, hw * hw, (b, k), generator=g), hw, c, 0.3, g)
    est = VSDEstimator(c, k)
    opt = torch.optim.Adam(est.parameters(), lr=0.05)
    valid = torch.ones(b, k, dtype=torch.bool)
    for _ in range(150):  # fit the predictors p(y | .) by cross-entropy, as VSD trains its classifiers
        loss = est.predictor_loss({"motion": [v], "fused": [z_kept, z_lost]}, target.log(), valid)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        kept = est.conditional_information(v, z_kept, "motion", "fused").mean().item()
        lost = est.conditional_information(v, z_lost, "motion", "fused").mean().item()
    assert lost > 3 * kept, (kept, lost)


def test_heatmap_mse_matches_formula_and_weights() -> None:
    pred, gt = torch.randn(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    w = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    manual = 0.5 * ((pred - gt) ** 2 * w[:, :, None, None]).mean()
    torch.testing.assert_close(heatmap_mse(pred, gt, w), manual)
    pred2 = pred.clone()
    pred2[0, 1] += 5.0  # weight-0 joint: no effect
    torch.testing.assert_close(heatmap_mse(pred2, gt, w), manual)


def _gaussian_targets(b: int, k: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ys = torch.randint(2, h - 2, (b, k, 1, 1), generator=g).float()
    xs = torch.randint(2, w - 2, (b, k, 1, 1), generator=g).float()
    yy = torch.arange(h).view(1, 1, h, 1).float()
    xx = torch.arange(w).view(1, 1, 1, w).float()
    return torch.exp(-((yy - ys) ** 2 + (xx - xs) ** 2) / (2 * 1.5**2))


def _tiny(**overrides):
    return load_model_config("tdmi_lite", input_size_hw=(64, 64), heatmap_size_hw=(16, 16), **overrides)


def test_loss_outputs_and_errors() -> None:
    cfg = _tiny()
    model = build_model(cfg)
    loss_fn = TDMILoss(cfg, alpha=1.0)
    aux = model(torch.randn(2, 5, 3, 64, 64), return_aux=True)
    target = _gaussian_targets(2, 17, 16, 16, 0)
    weight = torch.ones(2, 17)
    out = loss_fn(aux, target, weight)
    for key in ("total", "heatmap", "mi", "mi_useful_noisy", "mi_motion_useful", "mi_useful_label", "mi_visual_label"):
        assert out[key].dim() == 0 and torch.isfinite(out[key]), key
    bound = math.log(2) / (16 * 16) + 1e-7  # Î in [0, log 2] per keypoint, divided by h*w positions
    assert 0 <= out["mi_useful_noisy"] <= bound and 0 <= out["mi_motion_useful"] <= bound
    torch.testing.assert_close(out["total"], out["heatmap"] + out["mi"] + out["vsd_predictor"])
    no_mi = TDMILoss(cfg, alpha=0.0)
    no_mi.load_state_dict(loss_fn.state_dict())
    out0 = no_mi(aux, target, weight)
    torch.testing.assert_close(out0["total"], out0["heatmap"] + out0["vsd_predictor"])
    with pytest.raises(TypeError, match="return_aux=True"):
        loss_fn(aux.heatmaps, target, weight)
    with pytest.raises(ValueError, match="target heatmaps"):
        loss_fn(aux, target[:, :5], weight)
    with pytest.raises(ValueError, match="target_weight"):
        loss_fn(aux, target, torch.ones(2, 5))
    # All joints invisible: label terms vanish but stay finite.
    out_none = loss_fn(aux, target, torch.zeros(2, 17))
    assert torch.isfinite(out_none["total"]) and out_none["mi_useful_label"] == 0


@pytest.mark.parametrize("freeze_backbone", [True, False])
def test_gradients_reach_every_trainable_part(freeze_backbone: bool) -> None:
    torch.manual_seed(0)
    cfg = _tiny(freeze_backbone=freeze_backbone)
    model = build_model(cfg).train()
    loss_fn = TDMILoss(cfg)
    aux = model(torch.randn(2, 5, 3, 64, 64), return_aux=True)
    loss_fn(aux, _gaussian_targets(2, 17, 16, 16, 1), torch.ones(2, 17))["total"].backward()
    named = list(model.named_parameters()) + [("loss." + n, p) for n, p in loss_fn.named_parameters()]
    trainable = [(n, p) for n, p in named if p.requires_grad]
    no_grad = [n for n, p in trainable if p.grad is None or p.grad.abs().sum() == 0]
    assert not no_grad, no_grad
    # Every part of the temporal head and the RDM's *noisy* MLP (reached only through the MI loss).
    assert any(n.startswith("temporal_head.rdm.mlp_n") for n, _ in trainable)
    backbone_trainable = [n for n, _ in trainable if n.startswith("backbone.")]
    assert (len(backbone_trainable) == 0) == freeze_backbone


def test_tiny_overfit_total_loss_falls() -> None:
    torch.manual_seed(0)
    cfg = load_model_config("tdmi_lite", input_size_hw=(32, 32), heatmap_size_hw=(8, 8), freeze_backbone=False)
    model = build_model(cfg).train()
    loss_fn = TDMILoss(cfg)
    frames = torch.randn(2, 5, 3, 32, 32)
    target = _gaussian_targets(2, 17, 8, 8, 3)
    weight = torch.ones(2, 17)
    params = [p for p in list(model.parameters()) + list(loss_fn.parameters()) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=2e-3)
    history = []
    for _ in range(25):
        out = loss_fn(model(frames, return_aux=True), target, weight)
        opt.zero_grad()
        out["total"].backward()
        opt.step()
        history.append({k: v.item() for k, v in out.items()})
    first, last = history[0], history[-1]
    assert last["total"] < 0.8 * first["total"], (first, last)
    assert last["heatmap"] < 0.5 * first["heatmap"], (first["heatmap"], last["heatmap"])
    assert all(math.isfinite(h["total"]) for h in history)


def test_spatial_log_softmax_normalises_each_keypoint() -> None:
    lp = spatial_log_softmax(torch.randn(2, 3, 4, 5), temperature=0.5)
    assert lp.shape == (2, 3, 20)
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(2, 3))
    assert vsd_shared_information(lp, lp).allclose(torch.full((2, 3), math.log(2)))
