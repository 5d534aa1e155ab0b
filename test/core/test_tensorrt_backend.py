"""Engine-cache key logic (always) and the Torch-TensorRT backend (only with torch_tensorrt + a CUDA GPU)."""
from __future__ import annotations

import dataclasses
import importlib.util
import logging
from pathlib import Path

import pytest
import torch

from tdmi_core.models import build_model, load_model_config
from tdmi_core.runtime.engine_cache import EngineCache, EngineKey, model_fingerprint


def make_key(**changes) -> EngineKey:
    key = EngineKey(
        part="backbone",
        model_hash="0123456789abcdef",
        model_name="tdmi_lite",
        compiler="torch_tensorrt-2.14.0",
        runtime="tensorrt-10.15.1",
        torch_version="2.14.1",
        device="NVIDIA H100 (sm_90)",
        precision="fp16",
        min_shape=(1, 3, 192, 160),
        opt_shape=(5, 3, 192, 160),
        max_shape=(16, 3, 192, 160),
    )
    return dataclasses.replace(key, **changes)


def write_bytes(data: bytes):
    def write(path: Path) -> None:
        path.write_bytes(data)

    return write


def test_key_digest_changes_with_every_field() -> None:
    base = make_key()
    assert base.digest() == make_key().digest()
    changes = {
        "part": "head", "model_hash": "fedcba9876543210", "model_name": "x", "compiler": "torch_tensorrt-2.15.0",
        "runtime": "tensorrt-10.16.0", "torch_version": "2.15.0", "device": "NVIDIA L4 (sm_89)", "precision": "fp32",
        "min_shape": (2, 3, 192, 160), "opt_shape": (4, 3, 192, 160), "max_shape": (32, 3, 192, 160),
    }
    assert set(changes) == {f.name for f in dataclasses.fields(EngineKey)}
    digests = {base.digest()}
    for name, value in changes.items():
        other = make_key(**{name: value})
        assert other.differences(base) == [name]
        digests.add(other.digest())
    assert len(digests) == len(changes) + 1
    with pytest.raises(ValueError):
        make_key(min_shape=(8, 3, 192, 160))  # min > opt
    assert EngineKey.from_dict(base.to_dict()) == base


def test_cache_hit_miss_and_rebuild_on_mismatch(tmp_path: Path, caplog) -> None:
    cache = EngineCache(tmp_path / "engines")
    key = make_key()
    assert cache.lookup(key) is None and cache.entries() == []
    path = cache.store(key, write_bytes(b"engine-v1"))
    assert path.read_bytes() == b"engine-v1" and cache.lookup(key) == path
    assert cache.entries() == [key]
    other = make_key(device="NVIDIA L4 (sm_89)")
    with caplog.at_level(logging.INFO, logger="tdmi_core.runtime.engine_cache"):
        assert cache.lookup(other) is None
    assert "device" in caplog.text  # says which field forced the rebuild
    cache.store(other, write_bytes(b"engine-l4"))
    assert cache.lookup(key).read_bytes() == b"engine-v1" and cache.lookup(other).read_bytes() == b"engine-l4"
    assert cache.clear() == 2 and cache.lookup(key) is None


def test_cache_rejects_tampered_or_corrupt_key_file(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    key = make_key()
    path = cache.store(key, write_bytes(b"x"))
    meta = path.with_suffix(path.suffix + ".json")
    meta.write_text(meta.read_text().replace("fp16", "fp32"))
    assert cache.lookup(key) is None
    meta.write_text("{not json")
    assert cache.lookup(key) is None


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)

    def broken(path: Path) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError):
        cache.store(make_key(), broken)
    assert list(tmp_path.iterdir()) == []


def test_model_fingerprint_tracks_weights_and_dtype() -> None:
    cfg = load_model_config("tdmi_lite", name="fp_test", width=8, input_size_hw=(64, 64), heatmap_size_hw=(16, 16))
    torch.manual_seed(0)
    a = build_model(cfg)
    torch.manual_seed(0)
    b = build_model(cfg)
    assert model_fingerprint(a) == model_fingerprint(b)
    with torch.no_grad():
        next(b.temporal_head.parameters()).add_(1e-3)
    assert model_fingerprint(a) != model_fingerprint(b)
    assert model_fingerprint(a) != model_fingerprint(a.half())
    causal = dataclasses.replace(cfg, window="causal")  # same weights, another graph: another engine
    assert model_fingerprint(a, cfg) != model_fingerprint(a, causal) != model_fingerprint(a)


def _tensorrt_unavailable() -> str | None:
    if importlib.util.find_spec("torch_tensorrt") is None:
        return "torch_tensorrt is not installed (pip install torch-tensorrt on a CUDA machine)"
    if not torch.cuda.is_available():
        return "no CUDA GPU: the TensorRT backend needs one"
    return None


@pytest.mark.gpu
@pytest.mark.skipif(_tensorrt_unavailable() is not None, reason=str(_tensorrt_unavailable()))
def test_tensorrt_backend_matches_torch_and_reuses_cache(tmp_path: Path) -> None:
    from tdmi_core.runtime.backends.tensorrt_backend import TensorRTBackend

    cfg = load_model_config("tdmi_lite")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    reference = build_model(cfg).eval().cuda()
    reference.load_state_dict(model.state_dict())
    backend = TensorRTBackend(model, cfg, precision="fp16", batch_range=(1, 3, 4), cache_dir=tmp_path, show_progress=False)
    files = sorted(tmp_path.glob("*.ep"))
    assert len(files) == 2
    crops = torch.randn(3, 3, *cfg.input_size_hw, device="cuda")
    with torch.inference_mode():
        want = reference.backbone(crops)
        got = backend.backbone(crops.half()).float()
        assert got.shape == want.shape
        assert (got - want).abs().max() <= 2e-2 * want.abs().max() + 1e-3
        window = torch.randn(4, cfg.num_frames, 4, cfg.width, *cfg.heatmap_size_hw, device="cuda")
        hm_want = reference.temporal_head(window)
        hm_got = backend.temporal_head(*reference.temporal_head.split_inputs(window.half())).float()
        assert (hm_got - hm_want).abs().max() <= 2e-2 * hm_want.abs().max() + 1e-3
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = TensorRTBackend(model, cfg, precision="fp16", batch_range=(1, 3, 4), cache_dir=tmp_path, show_progress=False)
    assert [f.stat().st_mtime_ns for f in files] == mtimes  # loaded, not rebuilt
    with torch.inference_mode():
        torch.testing.assert_close(again.backbone(crops.half()), backend.backbone(crops.half()))


def test_runtime_imports_no_optional_backend_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tdmi_core.runtime, tdmi_core.runtime.backends, tdmi_core.runtime.backends.tensorrt_backend, "
        "tdmi_core.runtime.backends.onnx_backend; "
        "print(sorted(m for m in ('onnxruntime', 'torch_tensorrt', 'tensorrt') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.skipif(importlib.util.find_spec("torch_tensorrt") is not None, reason="torch_tensorrt is installed")
def test_tensorrt_backend_without_torch_tensorrt_says_how_to_fix() -> None:
    from tdmi_core.runtime.backends.tensorrt_backend import TensorRTBackend

    cfg = load_model_config("tdmi_lite")
    with pytest.raises(ImportError, match="pip install torch-tensorrt"):
        TensorRTBackend(build_model(cfg), cfg)
