"""A tiny TDMI config for fast ROS tests (untrained weights; only the pipeline is under test)."""
from __future__ import annotations

from pathlib import Path

TINY_MODEL_YAML = """\
base: tdmi_lite
name: tdmi_tiny_test
input_size_hw: [64, 32]
heatmap_size_hw: [16, 8]
"""


def write_tiny_model_yaml(directory: Path, window: str = "symmetric") -> Path:
    path = directory / f"tdmi_tiny_test_{window}.yaml"
    path.write_text(f"{TINY_MODEL_YAML}window: {window}\n")
    return path

