"""TDMI network: backbone/temporal_head split, shapes, TDE properties, frozen backbone, weights files."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tdmi_core.models import MODEL_CONFIGS, TemporalHeadOutput, build_model, load_model_config
from tdmi_core.models.tde import temporal_differences
from tdmi_core.models.weights import WeightsError, load_weights, save_weights

torch.set_num_threads(1)  # 2 shared cores: one OpenMP thread avoids oversubscription stalls


def tiny(name: str = "tdmi_lite", **overrides):
    """A named config at a small crop so eager tests stay fast."""
    return load_model_config(name, input_size_hw=(64, 64), heatmap_size_hw=(16, 16), **overrides)


def _eval_model(cfg, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    # Non-trivial BatchNorm statistics and offsets so the checks below are not vacuous.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        for om in model.temporal_head.tde.offset_mask:
            om.conv.weight.normal_(std=0.05)
            om.conv.bias.normal_(std=0.5)
    return model


@pytest.mark.parametrize("name", ["tdmi_lite", "tdmi_st_w48_384x288"])
def test_split_composes_to_monolithic_forward(name: str) -> None:
    cfg = tiny(name, width=8) if name != "tdmi_lite" else tiny(name)
    model = _eval_model(cfg)
    frames = torch.randn(2, cfg.num_frames, 3, *cfg.input_size_hw)
    with torch.no_grad():
        mono = model(frames)
        per_frame = torch.stack([model.backbone(frames[:, t]) for t in range(cfg.num_frames)], dim=1)
        split = model.temporal_head(per_frame)
    assert mono.shape == (2, cfg.num_keypoints, *cfg.heatmap_size_hw)
    torch.testing.assert_close(split, mono, rtol=1e-5, atol=1e-5)


def test_feature_reuse_across_windows_matches_fresh_computation() -> None:
    """Sliding by one frame: reusing 4 cached frame features gives the same heatmaps as recomputing all 5."""
    cfg = tiny()
    model = _eval_model(cfg, seed=1)
    video = torch.randn(6, 3, *cfg.input_size_hw)  # one person, 6 frames
    with torch.no_grad():
        cache = model.backbone(video)  # each frame once
        reused = model.temporal_head(cache[1:6].unsqueeze(0))
        fresh = model(video[1:6].unsqueeze(0))
    torch.testing.assert_close(reused, fresh, rtol=1e-5, atol=1e-5)


def test_aux_outputs_shapes_and_gates() -> None:
    cfg = tiny()
    model = _eval_model(cfg)
    with torch.no_grad():
        out = model(torch.randn(3, 5, 3, 64, 64), return_aux=True)
    assert isinstance(out, TemporalHeadOutput)
    c, hw = cfg.width, cfg.heatmap_size_hw
    assert out.heatmaps.shape == (3, 17, *hw)
    for t in (out.motion, out.useful, out.noisy, out.visual, out.fused):
        assert t.shape == (3, c, *hw)
    assert out.gate_u.shape == out.gate_n.shape == (3, c)
    assert ((out.gate_u > 0) & (out.gate_u < 1)).all()
    torch.testing.assert_close(out.useful, out.motion * out.gate_u[:, :, None, None])
    torch.testing.assert_close(out.noisy, out.motion * out.gate_n[:, :, None, None])


def test_tdmi_head_fuses_key_frame_final_stage_feature() -> None:
    cfg = tiny()
    model = _eval_model(cfg)
    window = torch.randn(2, 5, 4, cfg.width, *cfg.heatmap_size_hw)
    with torch.no_grad():
        out = model.temporal_head(window, return_aux=True)
    assert torch.equal(out.visual, window[:, cfg.delta, -1])


def test_identical_frames_give_zero_differences_and_content_free_motion() -> None:
    cfg = tiny()
    model = _eval_model(cfg)
    still_a = torch.randn(1, 1, 4, cfg.width, *cfg.heatmap_size_hw).expand(1, 5, -1, -1, -1, -1)
    still_b = torch.randn(1, 1, 4, cfg.width, *cfg.heatmap_size_hw).expand(1, 5, -1, -1, -1, -1)
    assert torch.count_nonzero(temporal_differences(still_a)) == 0
    with torch.no_grad():
        m_a = model.temporal_head(still_a, return_aux=True).motion
        m_b = model.temporal_head(still_b, return_aux=True).motion
        moving = still_a.clone()
        moving[:, 3:] += 0.5
        m_moving = model.temporal_head(moving, return_aux=True).motion
    # No motion -> M does not depend on what the frames show; motion -> M changes.
    torch.testing.assert_close(m_a, m_b)
    assert (m_moving - m_a).abs().max() > 1e-3
    # The same through the whole network: a still video (one image repeated) has zero TDE input.
    with torch.no_grad():
        img_a, img_b = torch.randn(2, 1, 1, 3, *cfg.input_size_hw)
        video_m_a = model(img_a.expand(1, 5, -1, -1, -1), return_aux=True).motion
        video_m_b = model(img_b.expand(1, 5, -1, -1, -1), return_aux=True).motion
    torch.testing.assert_close(video_m_a, video_m_b)
    torch.testing.assert_close(video_m_a, m_a)


def test_temporal_differences_order() -> None:
    w = torch.arange(5.0).view(1, 5, 1, 1, 1, 1) ** 2  # 0, 1, 4, 9, 16
    assert temporal_differences(w).flatten().tolist() == [1.0, 3.0, 5.0, 7.0]


def test_w48_and_w32_temporal_head_shapes() -> None:
    for name in ("tdmi_w48_384x288", "tdmi_w32_256x192"):
        cfg = MODEL_CONFIGS[name]
        head = build_model(cfg).temporal_head.eval()
        window = torch.randn(1, 5, 4, cfg.width, *cfg.heatmap_size_hw)
        with torch.no_grad():
            assert head(window).shape == (1, 17, *cfg.heatmap_size_hw)


def test_bad_inputs_raise_clear_errors() -> None:
    cfg = tiny()
    model = _eval_model(cfg)
    with pytest.raises(ValueError, match=r"expects window \[B, 5, 4, 16, 16, 16\]"):
        model.temporal_head(torch.randn(1, 3, 4, cfg.width, 16, 16))
    with pytest.raises(ValueError, match=r"expects frames \[B, 5, 3, H, W\]"):
        model(torch.randn(1, 4, 3, 64, 64))


def test_frozen_backbone_keeps_bn_statistics_and_gets_no_grad() -> None:
    cfg = tiny(freeze_backbone=True)
    model = build_model(cfg).train()
    assert not model.backbone.training and model.temporal_head.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model(torch.randn(2, 5, 3, 64, 64)).sum().backward()
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    trainable = build_model(tiny(freeze_backbone=False)).train()
    assert trainable.backbone.training
    frozen_names = {n for n, p in trainable.named_parameters() if not p.requires_grad}
    assert frozen_names == {"backbone.final_layer.weight", "backbone.final_layer.bias"}


def test_weights_round_trip_and_errors(tmp_path: Path) -> None:
    cfg = tiny(head="tdmi_st")
    model = _eval_model(cfg, seed=4)
    path = tmp_path / "w" / "model.pt"
    save_weights(model, path)
    loaded, loaded_cfg = load_weights(path)
    assert loaded_cfg == cfg and not loaded.training
    frames = torch.randn(1, 5, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(frames), model(frames), rtol=0, atol=0)
    other = tmp_path / "plain.pt"
    torch.save(model.state_dict(), other)
    with pytest.raises(WeightsError, match="not a TDMI weights file"):
        load_weights(other)
    payload = torch.load(path, weights_only=True)
    payload["config"]["width"] = 8
    mismatched = tmp_path / "mismatch.pt"
    torch.save(payload, mismatched)
    with pytest.raises(WeightsError, match="wrong shape"):
        load_weights(mismatched)
    with pytest.raises(ValueError, match="does not describe this model"):
        save_weights(model, tmp_path / "x.pt", MODEL_CONFIGS["tdmi_lite"])


def test_lite_weights_file_is_small(tmp_path: Path) -> None:
    path = tmp_path / "lite.pt"
    save_weights(build_model(MODEL_CONFIGS["tdmi_lite"]), path)
    assert path.stat().st_size < 25 * 2**20


@pytest.mark.parametrize("groups", [1, 2])
def test_grid_sample_deform_conv_matches_torchvision(groups: int) -> None:
    from torchvision.ops import deform_conv2d

    from tdmi_core.models.tde import deform_conv2d_grid_sample

    g = torch.Generator().manual_seed(groups)
    b, c, h, w = 2, 6, 9, 7
    x = torch.randn(b, c, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    # Offsets up to several pixels: many taps land between pixels and some outside the map.
    offset = (3 * torch.randn(b, 2 * groups * 9, h, w, generator=g, dtype=torch.float64)).requires_grad_()
    mask = torch.rand(b, groups * 9, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, c, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    want = deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    got = deform_conv2d_grid_sample(x, offset, weight, bias, mask)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    grads_want = torch.autograd.grad((want * want.detach()).sum(), [x, offset, mask, weight, bias])
    grads_got = torch.autograd.grad((got * want.detach()).sum(), [x, offset, mask, weight, bias])
    for gw, gg in zip(grads_want, grads_got):
        torch.testing.assert_close(gg, gw, rtol=1e-7, atol=1e-7)


def test_set_deform_conv_impl_keeps_model_outputs() -> None:
    from tdmi_core.models.tde import set_deform_conv_impl

    cfg = tiny()
    model = _eval_model(cfg, seed=5)
    window = torch.randn(2, 5, 4, cfg.width, *cfg.heatmap_size_hw)
    with torch.no_grad():
        want = model.temporal_head(window)
        assert set_deform_conv_impl(model, "grid_sample") == 4
        got = model.temporal_head(window)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="grid_sample"):
        set_deform_conv_impl(model, "cuda_magic")
