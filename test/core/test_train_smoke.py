"""CPU training smoke tests on the tiny synthetic PoseTrack fixtures: the loss is finite and falls,
resuming from a checkpoint gives bit-identical results, the CLI writes its outputs, a frozen backbone
stays fixed, and the prediction CLI writes official PoseTrack json files."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from tdmi_core.train.__main__ import main as train_main
from tdmi_core.train.checkpoint import load_checkpoint
from tdmi_core.train.config import TrainConfig
from tdmi_core.train.trainer import Trainer

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "posetrack_train"
TINY_MODEL_YAML = """\
base: tdmi_lite
name: tdmi_lite_test
input_size_hw: [64, 64]
heatmap_size_hw: [16, 16]
"""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("model") / "tiny.yaml"
    path.write_text(TINY_MODEL_YAML)
    return str(path)


def _cfg(tiny_model: str, out: Path, **kw) -> TrainConfig:
    base = dict(
        model=tiny_model, train_annotations=str(FIXTURES / "posetrack18" / "train"), train_image_root=str(FIXTURES),
        epochs=6, batch_size=12, lr_milestones=(100,), num_workers=0, output_dir=str(out), augment=False,
        sigma=1.0, progress=False, torch_threads=1, seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


def _steps(out: Path) -> list[dict[str, float]]:
    with (out / "steps.csv").open() as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def test_loss_finite_and_falling(tiny_model: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    Trainer(_cfg(tiny_model, tmp_path)).fit()
    steps = _steps(tmp_path)
    assert len(steps) == 6  # one step per epoch: the 12 windows fit in one batch
    assert all(torch.isfinite(torch.tensor([s["loss"], s["heatmap"], s["mi"]])).all() for s in steps)
    first, last = steps[:2], steps[-2:]
    for key in ("loss", "heatmap"):
        assert sum(s[key] for s in last) < sum(s[key] for s in first), f"{key} did not fall: {[s[key] for s in steps]}"


def test_resume_is_bit_identical(tiny_model: str, tmp_path: Path) -> None:
    """4 epochs straight == 2 epochs, checkpoint, resume in a new process state, 2 more (with augmentation
    and an lr decay after epoch 3, so the optimizer, scheduler and augmentation streams must all resume)."""
    torch.set_num_threads(1)
    kw = dict(epochs=4, lr_milestones=(3,), augment=True, batch_size=6, max_iters_per_epoch=1)
    straight = tmp_path / "straight"
    Trainer(_cfg(tiny_model, straight, **kw)).fit()
    steps = _steps(straight)
    half = tmp_path / "half"
    Trainer(_cfg(tiny_model, half, **{**kw, "epochs": 2})).fit()
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(half / "last.pt", resumed / "from_epoch2.pt")
    torch.manual_seed(12345)  # the checkpoint's RNG state must win over whatever state the process has
    trainer = Trainer(_cfg(tiny_model, resumed, **kw, resume=str(resumed / "from_epoch2.pt")))
    assert trainer.start_epoch == 2 and trainer.global_step == 2
    trainer.fit()
    resumed_steps = _steps(resumed)
    assert [s["step"] for s in resumed_steps] == [3, 4]
    assert resumed_steps[-1]["lr"] == pytest.approx(1e-4)
    for a, b in zip(steps[2:], resumed_steps):
        assert a == b  # bit-identical losses after resuming
    final_a = load_checkpoint(straight / "last.pt")
    final_b = load_checkpoint(resumed / "last.pt")
    for key in ("model", "loss"):
        for name, tensor in final_a[key].items():
            assert torch.equal(tensor, final_b[key][name]), f"{key}.{name} differs after resume"
    assert final_a["scheduler"] == final_b["scheduler"]


def test_frozen_backbone_stays_fixed(tiny_model: str, tmp_path: Path) -> None:
    trainer = Trainer(_cfg(tiny_model, tmp_path, epochs=2, frozen_backbone=True))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trained_ids = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert not any(id(p) in trained_ids for p in trainer.model.backbone.parameters())
    trainer.fit()
    after = trainer.model.state_dict()
    backbone = [k for k in before if k.startswith("backbone.")]
    head = [k for k in before if k.startswith("temporal_head.") and before[k].is_floating_point()]
    assert backbone and all(torch.equal(before[k], after[k]) for k in backbone)  # incl. BatchNorm statistics
    assert any(not torch.equal(before[k], after[k]) for k in head)


def test_cli_yaml_defaults_overrides_and_outputs(tiny_model: str, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        f"model: {tiny_model}\ntrain_annotations: {FIXTURES / 'posetrack18' / 'train'}\ntrain_image_root: {FIXTURES}\n"
        f"val_annotations: {FIXTURES / 'posetrack18' / 'val'}\nval_image_root: {FIXTURES}\n"
        "epochs: 5\nbatch_size: 6\nnum_workers: 0\naugment: true\nprogress: true\nlr: 0.01\n"
    )
    out = tmp_path / "out"
    tensorboard = pytest.importorskip("tensorboard") is not None
    argv = ["--config", str(config), "--epochs", "2", "--lr", "0.002", "--output-dir", str(out),
            "--max-iters-per-epoch", "1", "--torch-threads", "1", "--tensorboard" if tensorboard else "--no-tensorboard"]
    assert train_main(argv) == 0
    import yaml

    resolved = yaml.safe_load((out / "args.yaml").read_text())
    assert resolved["epochs"] == 2 and resolved["lr"] == 0.002 and resolved["batch_size"] == 6  # CLI > YAML > defaults
    assert resolved["model"] == tiny_model and resolved["lr_milestones"] == [6, 12, 18]
    for name in ("last.pt", "best.pt", "model_best.pt", "model_final.pt", "steps.csv", "epochs.csv", "curves.png"):
        assert (out / name).is_file(), name
    with (out / "epochs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(0.0 <= float(r["val_pck"]) <= 1.0 for r in rows)
    assert (out / "curves.png").stat().st_size > 1000
    if tensorboard:
        assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    # the deployable weights load with the model helper's loader
    from tdmi_core.models.weights import load_weights

    model, cfg = load_weights(out / "model_final.pt")
    assert cfg.name == "tdmi_lite_test"


def test_predict_cli_writes_official_json(tiny_model: str, tmp_path: Path) -> None:
    from tdmi_core.eval.formats import posetrack18_to_annolist
    from tdmi_core.tools.predict import main as predict_main

    run = tmp_path / "run"
    Trainer(_cfg(tiny_model, run, epochs=1)).fit()
    out = tmp_path / "pred"
    assert predict_main(["--weights", str(run / "model_final.pt"), "--annotations", str(FIXTURES / "posetrack18" / "val"),
                         "--image-root", str(FIXTURES), "--detections", str(FIXTURES / "detections" / "val_boxes.json"),
                         "--output-dir", str(out), "--num-workers", "0", "--device", "cpu"]) == 0
    gt_path = FIXTURES / "posetrack18" / "val" / "000003_synth_val.json"
    pred_path = out / gt_path.name
    pred = json.loads(pred_path.read_text())
    gt = json.loads(gt_path.read_text())
    assert [i["id"] for i in pred["images"]] == [i["id"] for i in gt["images"]]
    boxes = json.loads((FIXTURES / "detections" / "val_boxes.json").read_text())
    assert len(pred["annotations"]) == len(boxes)  # every box on a labelled frame gets a pose
    ann = pred["annotations"][0]
    assert len(ann["keypoints"]) == 51 and len(ann["scores"]) == 17
    frames = posetrack18_to_annolist(pred, str(pred_path))  # readable the way poseval reads it
    assert sum(len(f.rects) for f in frames) == len(boxes)
    # the same model from the training checkpoint predicts the same poses
    out_ckpt = tmp_path / "pred_ckpt"
    assert predict_main(["--checkpoint", str(run / "last.pt"), "--annotations", str(FIXTURES / "posetrack18" / "val"),
                         "--image-root", str(FIXTURES), "--detections", str(FIXTURES / "detections" / "val_boxes.json"),
                         "--output-dir", str(out_ckpt), "--num-workers", "0", "--device", "cpu"]) == 0
    assert json.loads((out_ckpt / gt_path.name).read_text()) == pred


def test_init_weights_and_hrnet_checkpoint_are_loaded(tiny_model: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = Trainer(_cfg(tiny_model, run, epochs=1))
    first.fit()
    hrnet = tmp_path / "hrnet.pth"
    torch.save(first.model.backbone.state_dict(), hrnet)  # official HRNet checkpoints are plain state dicts
    torch.manual_seed(99)
    second = Trainer(_cfg(tiny_model, tmp_path / "second", init_weights=str(run / "model_final.pt"), seed=7))
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    third = Trainer(_cfg(tiny_model, tmp_path / "third", hrnet_checkpoint=str(hrnet), seed=7))
    backbone = third.model.backbone.state_dict()
    assert all(torch.equal(v, backbone[k]) for k, v in first.model.backbone.state_dict().items())
    head_a = first.model.temporal_head.state_dict()
    head_c = third.model.temporal_head.state_dict()
    assert any(not torch.equal(v, head_c[k]) for k, v in head_a.items() if v.is_floating_point())
    with pytest.raises(ValueError, match="differs from the configured"):
        Trainer(_cfg("tdmi_lite", tmp_path / "fourth", init_weights=str(run / "model_final.pt")))
