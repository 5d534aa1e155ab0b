"""Model configs: named variants, YAML files, validation."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tdmi_core.models import MODEL_CONFIGS, ModelConfig, load_model_config
from tdmi_core.models.configs import model_config_from_dict, save_model_config

REQUIRED = ("tdmi_w48_384x288", "tdmi_st_w48_384x288", "tdmi_w32_256x192", "tdmi_lite")


def test_required_named_configs_exist() -> None:
    assert set(REQUIRED) <= set(MODEL_CONFIGS)
    paper = MODEL_CONFIGS["tdmi_w48_384x288"]
    assert (paper.width, paper.input_size_hw, paper.heatmap_size_hw) == (48, (384, 288), (96, 72))
    assert (paper.delta, paper.num_frames, paper.tde_res_blocks, paper.rdm_hidden) == (2, 5, (3, 3, 2, 2), 128)
    assert paper.head == "tdmi" and MODEL_CONFIGS["tdmi_st_w48_384x288"].head == "tdmi_st"
    for name, cfg in MODEL_CONFIGS.items():
        assert cfg.name == name


@pytest.mark.parametrize("name", sorted(MODEL_CONFIGS))
def test_yaml_file_equals_named_config(repo_root: Path, name: str) -> None:
    path = repo_root / "config" / "models" / f"{name}.yaml"
    assert load_model_config(str(path)) == MODEL_CONFIGS[name]
    assert load_model_config(path) == MODEL_CONFIGS[name]


def test_every_yaml_file_is_a_named_config(repo_root: Path) -> None:
    stems = {p.stem for p in (repo_root / "config" / "models").glob("*.yaml")}
    assert stems == set(MODEL_CONFIGS)


def test_overrides_and_round_trips(tmp_path: Path) -> None:
    cfg = load_model_config("tdmi_lite", delta=1, head="tdmi_st")
    assert (cfg.delta, cfg.num_frames, cfg.head) == (1, 3, "tdmi_st")
    assert MODEL_CONFIGS["tdmi_lite"].delta == 2  # frozen originals are untouched
    assert model_config_from_dict(cfg.to_dict()) == cfg
    path = tmp_path / "mine.yaml"
    save_model_config(cfg, path)
    assert load_model_config(str(path)) == cfg
    base = tmp_path / "base.yaml"
    base.write_text("base: tdmi_w32_256x192\nname: my_w32\nhead: tdmi_st\n")
    got = load_model_config(str(base))
    assert got == dataclasses.replace(MODEL_CONFIGS["tdmi_w32_256x192"], name="my_w32", head="tdmi_st")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.width = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"input_size_hw": (250, 192), "heatmap_size_hw": (62, 48)}, "multiples of 32"),
        ({"heatmap_size_hw": (64, 48)}, "input_size_hw / 4"),
        ({"head": "mlp"}, "head must be one of"),
        ({"delta": 0}, "delta must be an integer >= 1"),
        ({"tde_res_blocks": (3, 3, 2)}, "tde_res_blocks must be 4 integers"),
        ({"width": 2.5}, "width must be an integer"),
        ({"tde_deform_groups": 5}, "divisible by tde_deform_groups"),
        ({"freeze_backbone": "yes"}, "freeze_backbone"),
    ],
)
def test_invalid_values_raise_with_the_fix(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_model_config("tdmi_w48_384x288", **overrides)


def test_unknown_names_keys_and_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tdmi_lite"):
        load_model_config("tdmi_w99")
    with pytest.raises(ValueError, match="unknown model config overrides"):
        load_model_config("tdmi_lite", widht=3)
    with pytest.raises(FileNotFoundError):
        load_model_config(str(tmp_path / "absent.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nwidht: 3\n")
    with pytest.raises(ValueError, match=r"unknown model config keys \['widht'\]"):
        load_model_config(str(bad))
    notmap = tmp_path / "list.yaml"
    notmap.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_model_config(str(notmap))
    with pytest.raises(ValueError, match="non-empty"):
        ModelConfig(name="")


def test_model_package_imports_no_ros_and_no_optional_backends() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tdmi_core.models, tdmi_core.models.weights, tdmi_core.models.export, tdmi_core.train.losses\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rclpy', 'tdmi_ros', 'onnxruntime', 'onnxscript', 'tensorrt', 'torch_tensorrt'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
