"""compare_modes: identical when nothing is held, differing (and cheaper) when boxes are held."""
from __future__ import annotations

import numpy as np

from tdmi_core.models import load_model_config
from tdmi_core.runtime.backends.torch_backend import TorchBackend
from tdmi_core.runtime.loading import untrained_model
from tdmi_core.runtime.types import TrackedBox
from tdmi_core.tools.compare_modes import compare_modes


def test_compare_modes_zero_threshold_is_exact_and_holding_saves_crops() -> None:
    cfg = load_model_config(
        "tdmi_lite", name="cmp_tiny", width=8, input_size_hw=(64, 64), heatmap_size_hw=(16, 16), rdm_hidden=8
    )
    backend = TorchBackend(untrained_model(cfg))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(8)]
    base = np.array([30.0, 10, 70, 90])
    tracks = [[TrackedBox(0, base + rng.uniform(-2, 2, 4))] for _ in frames]
    same = compare_modes(frames, tracks, backend, cfg, hold_threshold=0.0)
    assert same["distance_px"]["max"] == 0.0 and same["keypoints_compared"] == 8 * 17
    held = compare_modes(frames, tracks, backend, cfg, hold_threshold=0.5)
    assert held["backbone_crops_per_frame"]["streaming"] == 1.0
    assert held["backbone_crops_per_frame"]["exact"] == 34 / 8  # 3+4+5+5+5+5+4+3 distinct frames per window
    assert held["box_updates_per_person_frame"]["streaming"] == 1 / 8  # only the first box
    assert held["distance_px"]["max"] > 0.0  # different crops, different (untrained) answers
