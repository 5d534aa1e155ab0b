"""TrainConfig schema, shipped YAML files, CLI parsing, checkpoint safety, PCK metric, plots."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tdmi_core.models import load_model_config
from tdmi_core.train.__main__ import parse_config
from tdmi_core.train.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from tdmi_core.train.config import TrainConfig, load_train_config, save_train_config
from tdmi_core.eval.pck import box_normalised_pck, box_normalised_pck_counts
from tdmi_core.train.plots import plot_training_curves

REPO = Path(__file__).resolve().parents[2]
# the TrainConfig files (config/train/distill_movenet*.yaml belong to tdmi_core.train.distill, another schema)
SHIPPED = [REPO / "config" / "train" / name for name in ("posetrack17_tdmi_w48.yaml", "lite_end_to_end.yaml")]


def test_defaults_are_the_paper_protocol() -> None:
    cfg = TrainConfig()
    assert (cfg.lr, cfg.lr_milestones, cfg.lr_gamma, cfg.epochs, cfg.alpha) == (1e-3, (6, 12, 18), 0.1, 20, 1.0)
    aug = cfg.augment_config()
    assert (aug.rotation_max_deg, aug.scale_min, aug.scale_max, aug.flip_prob) == (45.0, 0.65, 1.35, 0.5)
    assert cfg.sigma == 3.0 and cfg.box_padding == 1.25
    with pytest.raises(dataclass_error()):
        cfg.lr = 0.1  # frozen


def dataclass_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_yaml_files_load(path: Path) -> None:
    cfg = load_train_config(path)
    load_model_config(cfg.model)  # names a real model variant


def test_shipped_configs_exist() -> None:
    assert all(p.is_file() for p in SHIPPED)
    paper = load_train_config(REPO / "config" / "train" / "posetrack17_tdmi_w48.yaml")
    assert paper.model == "tdmi_w48_384x288" and paper.epochs == 20 and paper.lr_milestones == (6, 12, 18)
    lite = load_train_config(REPO / "config" / "train" / "lite_end_to_end.yaml")
    assert lite.model == "tdmi_lite" and lite.annotation_format == "posetrack18"


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(lr=0), "lr must be a positive number"),
        (dict(epochs=0), "epochs must be an integer >= 1"),
        (dict(lr_milestones=(12, 6)), "lr_milestones must be increasing"),
        (dict(device="tpu"), "device must be one of"),
        (dict(annotation_format="coco"), "annotation_format must be one of"),
        (dict(scale_min=1.2), "scale range"),
        (dict(flip_prob=1.5), "flip_prob must be in"),
        (dict(val_annotations="x"), "val_annotations needs val_image_root"),
        (dict(max_iters_per_epoch=0), "max_iters_per_epoch must be null"),
    ],
)
def test_invalid_values_raise_with_the_field(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kw)


def test_yaml_unknown_key_and_roundtrip(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown training config keys \['learning_rate'\]"):
        load_train_config(bad)
    cfg = TrainConfig(model="tdmi_lite", lr_milestones=(2, 4), frozen_backbone=True)
    save_train_config(cfg, tmp_path / "args.yaml")
    assert load_train_config(tmp_path / "args.yaml") == cfg


def test_cli_overrides_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: tdmi_lite\nlr: 0.01\nbatch_size: 8\nfrozen_backbone: false\naugment: false\n")
    cfg = parse_config(["--config", str(path), "--lr", "0.005", "--frozen-backbone", "--lr-milestones", "3", "5",
                        "--val-annotations", "none"])
    assert cfg.lr == 0.005 and cfg.batch_size == 8 and cfg.frozen_backbone is True and cfg.augment is False
    assert cfg.lr_milestones == (3, 5) and cfg.val_annotations is None
    with pytest.raises(SystemExit):
        parse_config(["--no-such-flag"])


def test_checkpoint_roundtrip_and_safety(tmp_path: Path) -> None:
    payload = {"model": {"w": torch.ones(2)}, "loss": {}, "optimizer": {"state": {}, "param_groups": []},
               "scheduler": {"milestones": {6: 1}}, "epoch": 3, "global_step": 30, "rng": capture_rng_state()}
    save_checkpoint(tmp_path / "c.pt", payload)
    state = load_checkpoint(tmp_path / "c.pt")
    assert state["epoch"] == 3 and torch.equal(state["model"]["w"], torch.ones(2))
    with pytest.raises(ValueError, match="lacks"):
        save_checkpoint(tmp_path / "d.pt", {"model": {}})
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="not a TDMI training checkpoint"):
        load_checkpoint(tmp_path / "weights.pt")
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "c.pt").read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot load"):
        load_checkpoint(tmp_path / "trunc.pt")
    # a pickle that would run code is refused by weights_only loading
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"format": "tdmi-train-checkpoint", "x": Path("/")}, handle, protocol=2)
    with pytest.raises(CheckpointError, match="cannot load"):
        load_checkpoint(tmp_path / "evil.pt")


def test_rng_state_roundtrip() -> None:
    state = capture_rng_state()
    a = torch.rand(3)
    restore_rng_state(state)
    assert torch.equal(torch.rand(3), a)


def test_box_normalised_pck() -> None:
    gt = np.zeros((2, 3, 2))
    boxes = np.array([[0, 0, 100, 50], [0, 0, 10, 10]], float)  # normalisers 100 and 10
    pred = gt.copy()
    pred[0, 0] = [20, 0]   # 0.2 -> hit (<=)
    pred[0, 1] = [20.1, 0]  # > 0.2 -> miss
    pred[1, 0] = [1, 1]    # 0.141 -> hit
    pred[1, 1] = [np.nan, 0]  # NaN never hits
    labelled = np.array([[1, 1, 0], [1, 1, 1]])
    counts = box_normalised_pck_counts(pred, gt, labelled, boxes, 0.2)
    np.testing.assert_array_equal(counts.total, [2, 2, 1])
    np.testing.assert_array_equal(counts.correct, [2, 0, 1])
    assert counts.pck == pytest.approx(3 / 5)
    assert box_normalised_pck(pred, gt, labelled, boxes, 0.1) == pytest.approx(1 / 5)
    assert np.isnan(box_normalised_pck(pred, gt, np.zeros((2, 3)), boxes))
    with pytest.raises(ValueError, match=r"\[N, K, 2\]"):
        box_normalised_pck_counts(pred[0], gt, labelled, boxes)


def test_plot_writes_png(tmp_path: Path) -> None:
    (tmp_path / "steps.csv").write_text("step,epoch,lr,loss,heatmap,mi\n1,1,0.001,1.0,0.5,0.5\n2,1,0.001,0.8,0.4,-0.1\n")
    (tmp_path / "epochs.csv").write_text("epoch,val_pck,val_map\n1,0.3,nan\n2,0.5,40.0\n")
    out = plot_training_curves(tmp_path / "steps.csv", tmp_path / "epochs.csv", tmp_path / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
