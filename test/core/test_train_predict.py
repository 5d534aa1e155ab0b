"""Prediction files: perfect predictions written by our writer score 100 mAP with the official-kit
reimplementation, for PoseTrack2017 (annolist GT), 2018 and 21 — so frame pairing and joint slots are right."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tdmi_core.data.posetrack import read_split
from tdmi_core.eval.posetrack import evaluate_dirs
from tdmi_core.train.config import TrainConfig
from tdmi_core.train.predict import evaluation_kit, gt_images, write_predictions
from tdmi_core.train.trainer import Trainer

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "posetrack_train"
SPLITS = {
    "posetrack17": FIXTURES / "posetrack17" / "train",
    "posetrack18": FIXTURES / "posetrack18" / "val",
    "posetrack21": FIXTURES / "posetrack21" / "train",
}


def _gt_predictions(videos, shift_px: float = 0.0):
    """Each labelled person's GT joints as a prediction (score 1 for labelled, 0 otherwise)."""
    out = {}
    for v, video in enumerate(videos):
        rows = []
        for f, frame in enumerate(video.frames):
            for person in frame.persons:
                kps = person.keypoints.copy()
                kps[:, 1] += shift_px  # downwards, away from every other person
                kps[:, 2] = (person.keypoints[:, 2] > 0).astype(np.float32)
                rows.append((f, kps, 1.0))
        out[v] = rows
    return out


@pytest.mark.parametrize("fmt", sorted(SPLITS))
def test_perfect_predictions_score_100(fmt: str, tmp_path: Path) -> None:
    videos = read_split(SPLITS[fmt], FIXTURES)
    assert videos[0].fmt == fmt
    write_predictions(videos, _gt_predictions(videos), tmp_path / "pred")
    result = evaluate_dirs(SPLITS[fmt], tmp_path / "pred", evaluation_kit(videos))
    assert result.total == pytest.approx(100.0)
    assert result.num_frames == len(gt_images(videos[0])) or fmt != "posetrack17"
    # a shift larger than half the head size makes every joint wrong
    write_predictions(videos, _gt_predictions(videos, shift_px=300.0), tmp_path / "bad")
    assert evaluate_dirs(SPLITS[fmt], tmp_path / "bad", evaluation_kit(videos)).total == pytest.approx(0.0)


def test_trainer_logs_val_map_with_detections(tmp_path: Path) -> None:
    model_yaml = tmp_path / "tiny.yaml"
    model_yaml.write_text("base: tdmi_lite\nname: tdmi_lite_test\ninput_size_hw: [64, 64]\nheatmap_size_hw: [16, 16]\n")
    cfg = TrainConfig(
        model=str(model_yaml), train_annotations=str(FIXTURES / "posetrack18" / "train"), train_image_root=str(FIXTURES),
        val_annotations=str(FIXTURES / "posetrack18" / "val"), val_image_root=str(FIXTURES),
        val_detections=str(FIXTURES / "detections" / "val_boxes.json"), epochs=1, batch_size=12, num_workers=0,
        output_dir=str(tmp_path / "out"), progress=False, torch_threads=1, augment=False,
    )
    Trainer(cfg).fit()
    with (tmp_path / "out" / "epochs.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert 0.0 <= float(row["val_map"]) <= 100.0
    assert (tmp_path / "out" / "val_predictions" / "000003_synth_val.json").is_file()
