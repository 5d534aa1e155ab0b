"""A tiny TDMI config for fast ROS tests (random weights; only the pipeline is under test)."""
from __future__ import annotations

from pathlib import Path

TINY_MODEL_YAML = """\
base: tdmi_lite
name: tdmi_tiny_test
input_size_hw: [64, 32]
heatmap_size_hw: [16, 8]
"""


def write_tiny_model_yaml(directory: Path) -> Path:
    path = directory / "tdmi_tiny_test.yaml"
    path.write_text(TINY_MODEL_YAML)
    return path


def build_tiny_estimator(delta: int = 2):
    import torch

    from tdmi_core.models.configs import load_model_config
    from tdmi_core.models.tdmi import build_model
    from tdmi_core.runtime.backends.torch_backend import TorchBackend
    from tdmi_core.runtime.estimator import StreamingPoseEstimator

    torch.manual_seed(0)
    cfg = load_model_config("tdmi_lite", input_size_hw=(64, 32), heatmap_size_hw=(16, 8), delta=delta)
    return StreamingPoseEstimator(TorchBackend(build_model(cfg).eval()), cfg)
