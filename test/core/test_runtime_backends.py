"""Backends and the runtime config/factory: ONNX Runtime and bf16 against eager fp32, caching, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tdmi_core.models import build_model, load_model_config
from tdmi_core.models.weights import save_weights
from tdmi_core.runtime.backends import Backend
from tdmi_core.runtime.backends.torch_backend import TorchBackend
from tdmi_core.runtime.config import load_runtime_config
from tdmi_core.runtime.loading import build_estimator
from tdmi_core.runtime.types import TrackedBox
from tdmi_core.runtime.backends.onnx_backend import OnnxRuntimeBackend
from tdmi_core.runtime.estimator import StreamingPoseEstimator


def tiny_cfg():
    return load_model_config(
        "tdmi_lite", name="tiny_backend", width=8, input_size_hw=(64, 64), heatmap_size_hw=(16, 16), rdm_hidden=8
    )


def trained_like(cfg) -> torch.nn.Module:
    """A model whose features depend on the input (fresh HRNet init gives near-constant features)."""
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn_like(p) * (1.0 / p[0].numel()) ** 0.5)
    return model


def test_onnxruntime_backend_matches_torch_and_reuses_export(tmp_path: Path) -> None:
    cfg = tiny_cfg()
    model = trained_like(cfg)
    ref = TorchBackend(trained_like(cfg), channels_last=False)
    backend = OnnxRuntimeBackend(model, cfg, cache_dir=tmp_path, num_threads=1)
    assert isinstance(backend, Backend)
    files = sorted(tmp_path.glob("*.onnx"))
    assert len(files) == 2
    crops = torch.randn(3, 3, 64, 64)
    feats = ref.backbone(crops)
    torch.testing.assert_close(backend.backbone(crops), feats, rtol=1e-3, atol=1e-4)
    window = torch.randn(2, cfg.num_frames, 4, cfg.width, 16, 16)
    split = model.temporal_head.split_inputs(window)
    with torch.inference_mode():
        want = model.temporal_head(window)  # the head on the whole window: the same numbers
    torch.testing.assert_close(backend.temporal_head(*split), want, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(ref.temporal_head(*split), want, rtol=1e-3, atol=1e-4)
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = OnnxRuntimeBackend(model, cfg, cache_dir=tmp_path, num_threads=1)
    assert [f.stat().st_mtime_ns for f in sorted(tmp_path.glob("*.onnx"))] == mtimes  # cache hit, no re-export
    torch.testing.assert_close(again.backbone(crops), feats, rtol=1e-3, atol=1e-4)
    assert not model.training and not model.temporal_head.training  # export left the model in eval mode


def test_estimator_keypoints_agree_across_backends(tmp_path: Path) -> None:
    cfg = tiny_cfg()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(5)]
    box = np.array([20.0, 10, 70, 90])
    out = {}
    for name, backend in (
        ("torch", TorchBackend(trained_like(cfg))),
        ("onnxruntime", OnnxRuntimeBackend(trained_like(cfg), cfg, cache_dir=tmp_path, num_threads=1)),
    ):
        est = StreamingPoseEstimator(backend, cfg)
        res = [r for img in images for r in est.push(img, [TrackedBox(0, box)])] + est.flush()
        out[name] = np.stack([r.poses[0].keypoints for r in res])
    np.testing.assert_allclose(out["onnxruntime"], out["torch"], atol=1e-3)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="bf16 CPU convs need oneDNN")
def test_torch_bf16_backbone_is_close_and_head_stays_fp32() -> None:
    cfg = tiny_cfg()
    ref = TorchBackend(trained_like(cfg))
    bf16 = TorchBackend(trained_like(cfg), precision="bf16")
    assert bf16.input_dtype == torch.bfloat16 and bf16.head_dtype == torch.float32
    crops = torch.randn(2, 3, 64, 64)
    want = ref.backbone(crops)
    got = bf16.backbone(crops.bfloat16())
    assert got.dtype == torch.bfloat16
    assert (got.float() - want).abs().max() <= 0.05 * want.abs().max()
    window = torch.stack([want] * cfg.num_frames, dim=1)
    split = bf16.model.temporal_head.split_inputs(window.bfloat16())
    assert bf16.temporal_head(*split).dtype == torch.float32


def test_torch_backend_rejects_bad_precision_and_device() -> None:
    cfg = tiny_cfg()
    with pytest.raises(ValueError, match="fp16"):
        TorchBackend(build_model(cfg), precision="fp16")  # fp16 is CUDA-only here
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda"):
            TorchBackend(build_model(cfg), device="cuda")


def test_runtime_config_yaml_overrides_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "runtime.yaml"
    path.write_text("runtime:\n  model: tdmi_lite\n  allow_untrained: true\n  mode: exact\n  num_threads: 1\n")
    cfg = load_runtime_config(path, hold_threshold=0.2)
    assert cfg.mode == "exact" and cfg.hold_threshold == 0.2 and cfg.backend == "onnxruntime"
    with pytest.raises(ValueError, match="weights"):
        load_runtime_config({"weights": ""})
    with pytest.raises(ValueError, match="unknown runtime config keys"):
        load_runtime_config({"allow_untrained": True, "modee": "exact"})
    with pytest.raises(ValueError, match="tensorrt"):
        load_runtime_config({"allow_untrained": True, "backend": "tensorrt"})
    with pytest.raises(ValueError, match="opt_batch"):
        load_runtime_config({"allow_untrained": True, "min_batch": 4, "opt_batch": 2})
    with pytest.raises(FileNotFoundError):
        load_runtime_config(tmp_path / "missing.yaml")


def test_build_estimator_from_weights_file(tmp_path: Path) -> None:
    cfg = tiny_cfg()
    model = trained_like(cfg)
    weights = tmp_path / "tiny.pt"
    save_weights(model, weights)
    est, description = build_estimator(load_runtime_config({"weights": str(weights), "num_threads": 1}))
    assert str(weights) in description and "onnxruntime-cpu-fp32" in description
    assert est.model_cfg == cfg and est.mode == "aligned"
    img = np.zeros((80, 80, 3), np.uint8)
    est.push(img, [TrackedBox(0, [10, 10, 50, 70])], token="t0")
    (res,) = est.flush()
    assert res.token == "t0" and res.poses[0].keypoints.shape == (17, 3)
    ort_est, _ = build_estimator(
        load_runtime_config({"weights": str(weights), "backend": "onnxruntime", "cache_dir": str(tmp_path / "c")})
    )
    assert ort_est.backend.name.startswith("onnxruntime")
