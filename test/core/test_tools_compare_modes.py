"""compare_modes: identical when nothing moves, aligned and streaming cheaper than exact when boxes move."""
from __future__ import annotations

import numpy as np

from tdmi_core.models import load_model_config
from tdmi_core.runtime.backends.torch_backend import TorchBackend
from tdmi_core.runtime.loading import untrained_model
from tdmi_core.runtime.types import TrackedBox
from tdmi_core.tools.compare_modes import compare_modes, summary_table


def test_compare_modes_against_exact_in_one_run() -> None:
    cfg = load_model_config(
        "tdmi_lite", name="cmp_tiny", width=8, input_size_hw=(64, 64), heatmap_size_hw=(16, 16), rdm_hidden=8
    )
    backend = TorchBackend(untrained_model(cfg))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(8)]
    base = np.array([30.0, 10, 70, 90])
    tracks = [[TrackedBox(0, base + rng.uniform(-2, 2, 4))] for _ in frames]
    report = compare_modes(frames, tracks, backend, cfg, hold_thresholds=(0.0, 0.5))
    modes = report["modes"]
    assert list(modes) == ["exact", "aligned", "streaming@0", "streaming@0.5"]
    assert report["keypoints_compared"] == 8 * 17 and report["person_frames"] == 8
    assert modes["exact"]["distance_px"]["max"] == 0.0
    assert modes["streaming@0"]["distance_px"]["max"] == 0.0  # nothing held: the exact crops
    assert modes["exact"]["backbone_passes_per_person_frame"] == 34 / 8  # 3+4+5+5+5+5+4+3 distinct frames
    assert modes["aligned"]["backbone_passes_per_person_frame"] == 1.0  # each frame once, with its own box
    assert modes["aligned"]["aligned_features_per_person_frame"] > 0
    held = modes["streaming@0.5"]
    assert held["backbone_passes_per_person_frame"] == 1.0 and held["box_updates_per_person_frame"] == 1 / 8
    assert held["distance_px"]["max"] > 0.0  # different crops, different (untrained) answers
    assert summary_table(report).count("\n") == 5
