"""The backend table and model loading: what can run where, and every start-up failure as one clear error."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tdmi_core.models import load_model_config, save_model_config
from tdmi_core.models.weights import save_weights
from tdmi_core.runtime.backends import BACKENDS, unavailable_reason
from tdmi_core.runtime.config import RuntimeConfig, load_runtime_config
from tdmi_core.runtime.loading import ModelLoadError, build_estimator, load_model, untrained_model


@pytest.fixture(scope="module")
def tiny_yaml(tmp_path_factory) -> Path:
    cfg = load_model_config("tdmi_lite", name="tiny_loading", width=8, input_size_hw=(64, 64),
                            heatmap_size_hw=(16, 16), rdm_hidden=8)
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    save_model_config(cfg, path)
    return path


def test_one_table_decides_names_devices_and_availability() -> None:
    assert set(BACKENDS) == {"torch", "onnxruntime", "tensorrt"}
    assert unavailable_reason("torch", "cpu") is None
    assert "runs on cuda" in unavailable_reason("tensorrt", "cpu")
    assert "unknown backend" in unavailable_reason("tflite")
    if not torch.cuda.is_available():
        assert unavailable_reason("torch", "cuda") == "no CUDA device"
    # the config refuses what the table says cannot run, naming the backend
    with pytest.raises(ValueError, match="onnxruntime"):
        RuntimeConfig(backend="onnxruntime", device="cuda")
    with pytest.raises(ValueError, match="backend must be one of"):
        RuntimeConfig(backend="tflite")


def test_untrained_model_only_when_allowed(tiny_yaml: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "none.pt")
    with pytest.raises(ModelLoadError, match="no trained weights.*runtime.allow_untrained"):
        load_model(RuntimeConfig(model=str(tiny_yaml), weights=missing))
    model, model_cfg, source = load_model(RuntimeConfig(model=str(tiny_yaml), weights=missing, allow_untrained=True,
                                                        seed=3))
    assert model_cfg.name == "tiny_loading" and source == "UNTRAINED tiny_loading (seed 3)"
    again, _, _ = load_model(RuntimeConfig(model=str(tiny_yaml), weights="", allow_untrained=True, seed=3))
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)  # the seed decides the weights
    with pytest.raises(ModelLoadError, match="invalid runtime.model"):
        load_model(RuntimeConfig(model="no_such_model", weights="", allow_untrained=True))


def test_weights_file_wins_and_corrupt_files_fail_clearly(tiny_yaml: Path, tmp_path: Path) -> None:
    model_cfg = load_model_config(tiny_yaml)
    weights = tmp_path / "tiny.pt"
    save_weights(untrained_model(model_cfg), weights)
    _, loaded_cfg, source = load_model(RuntimeConfig(model="tdmi_lite", weights=str(weights)))
    assert loaded_cfg == model_cfg and source == f"weights {weights}"  # the file's config, not runtime.model
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(ModelLoadError, match=f"cannot load weights {bad}"):
        load_model(RuntimeConfig(weights=str(bad)))


def test_build_estimator_checks_delta_before_building_a_backend(tiny_yaml: Path) -> None:
    cfg = RuntimeConfig(model=str(tiny_yaml), weights="", allow_untrained=True, mode="exact", hold_threshold=0.3,
                        box_padding=1.5, opt_batch=4, max_batch=4)
    with pytest.raises(ModelLoadError, match="delta=3 but the model"):
        build_estimator(cfg, delta=3)
    estimator, description = build_estimator(cfg, delta=2)
    assert (estimator.mode, estimator.box_padding, estimator.max_batch) == ("exact", 1.5, 4)
    assert description == "UNTRAINED tiny_loading (seed 0), backend onnxruntime-cpu-fp32"


def test_backend_that_cannot_start_is_a_model_load_error(tiny_yaml: Path, monkeypatch) -> None:
    import tdmi_core.runtime.loading as loading

    def broken(*_args):
        raise ImportError("onnxruntime is broken")

    monkeypatch.setattr(loading, "build_backend", broken)
    with pytest.raises(ModelLoadError, match="backend 'onnxruntime' .* failed to start: ImportError"):
        build_estimator(load_runtime_config({"model": str(tiny_yaml), "weights": "", "allow_untrained": True,
                                             "backend": "onnxruntime"}))
