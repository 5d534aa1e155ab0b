"""Two-process ``torchrun`` training on CPU with the gloo backend (DistributedDataParallel)."""
from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import torch

from tdmi_core.train.checkpoint import load_checkpoint

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "posetrack_train"
REPO = Path(__file__).resolve().parents[2]


def test_torchrun_two_cpu_processes_gloo(tmp_path: Path) -> None:
    model_yaml = tmp_path / "tiny.yaml"
    model_yaml.write_text("base: tdmi_lite\nname: tdmi_lite_test\ninput_size_hw: [64, 64]\nheatmap_size_hw: [16, 16]\n")
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "tdmi_core.train", "--model", str(model_yaml),
        "--train-annotations", str(FIXTURES / "posetrack18" / "train"), "--train-image-root", str(FIXTURES),
        "--val-annotations", str(FIXTURES / "posetrack18" / "val"), "--val-image-root", str(FIXTURES),
        "--epochs", "1", "--batch-size", "2", "--max-iters-per-epoch", "2", "--num-workers", "0",
        "--device", "cpu", "--dist-backend", "gloo", "--torch-threads", "1", "--no-progress",
        "--output-dir", str(out), "--log-every-iters", "1",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "rank 0/2" in log and "rank 1/2" in log and "backend gloo" in log
    assert "device cpu x2" in log
    with (out / "steps.csv").open() as handle:
        steps = list(csv.DictReader(handle))
    assert [int(s["step"]) for s in steps] == [1, 2]
    assert all(math.isfinite(float(s["loss"])) for s in steps)
    with (out / "epochs.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert float(row["samples_per_s"]) > 0 and 0.0 <= float(row["val_pck"]) <= 1.0
    state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == 1 and state["global_step"] == 2
    # saved without DDP's "module." prefix, so a single process can resume it
    assert not any(k.startswith("module.") for k in state["model"])
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
