"""Bounded memory over 10,000 frames with tracks appearing and disappearing (tiny real model)."""
from __future__ import annotations

import gc

import numpy as np
import psutil

from tdmi_core.models import load_model_config
from tdmi_core.runtime.backends.onnx_backend import OnnxRuntimeBackend
from tdmi_core.runtime.estimator import StreamingPoseEstimator
from tdmi_core.runtime.loading import untrained_model
from tdmi_core.runtime.types import TrackedBox

FRAMES = 10_000


def micro_cfg():
    return load_model_config(
        "tdmi_lite", name="micro_soak", width=4, stem_channels=8, layer1_planes=8, stage_blocks=(1, 1, 1),
        input_size_hw=(32, 32), heatmap_size_hw=(8, 8), rdm_hidden=4, tde_res_blocks=(0, 0, 0, 0), head_res_blocks=0,
    )


def test_memory_stays_bounded_over_10000_frames(tmp_path) -> None:
    cfg = micro_cfg()
    # ONNX Runtime: ~8x less per-call overhead than eager torch on this micro model, so 10k frames take
    # under a minute; the estimator's buffers (the subject here) are the same for every backend.
    # calibrated: a fresh init computes with denormal floats, slow on CPUs
    backend = OnnxRuntimeBackend(untrained_model(cfg), cfg, cache_dir=tmp_path, num_threads=1)
    est = StreamingPoseEstimator(backend, cfg, mode="streaming", hold_threshold=0.1)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    live: dict[int, tuple[np.ndarray, int]] = {}  # id -> (box, frames left)
    next_id = 0
    window = 2 * cfg.delta + 1
    proc = psutil.Process()
    rss_mb = {}
    max_tracks = max_feats = emitted = 0
    for f in range(FRAMES):
        if len(live) < 3 and rng.random() < 0.3:  # a person appears for 1..40 frames
            x, y = rng.uniform(0, 40), rng.uniform(0, 20)
            live[next_id] = (np.array([x, y, x + 16, y + 28]), int(rng.integers(1, 41)))
            next_id += 1
        tracks = []
        for tid, (box, left) in list(live.items()):
            box = box + rng.normal(0, 1.5, 4) * np.array([1, 1, 1, 1])  # walks; sometimes beyond the hold threshold
            box[2:] = np.maximum(box[2:], box[:2] + 4)
            if rng.random() > 0.1:  # 10 % missed detections: the track skips a frame
                tracks.append(TrackedBox(tid, box))
            live[tid] = (box, left - 1)
            if left <= 1:
                del live[tid]
        emitted += len(est.push(image, tracks, token=f))
        assert est.num_buffered_frames <= window
        max_tracks = max(max_tracks, est.num_tracks)
        max_feats = max(max_feats, est.num_cached_features)
        if f in (1_000, FRAMES - 1):
            gc.collect()
            rss_mb[f] = proc.memory_info().rss / 2**20
    emitted += len(est.flush())
    assert emitted == FRAMES
    assert next_id > 1000  # many tracks came and went
    # live tracks are at most those seen in the last delta+1 frames: 3 people + ended ones still being emitted
    assert max_tracks <= 3 * (cfg.delta + 2)
    assert max_feats <= max_tracks * window * 2  # per track: the window's frames, briefly two crop boxes
    assert est.num_tracks == 0 and est.num_cached_features == 0
    growth = rss_mb[FRAMES - 1] - rss_mb[1_000]
    assert growth < 30, f"RSS grew by {growth:.1f} MB between frame 1000 and {FRAMES}: {rss_mb}"
