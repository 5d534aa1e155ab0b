"""The window rule shared by training and serving: frame indices and edge padding, symmetric and causal (tdmi_core.model_input)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tdmi_core.data.dataset import PoseTrackWindowDataset, gt_sample_refs
from tdmi_core.data.posetrack import read_split
from tdmi_core.model_input import WINDOWS, window_frame_indices, window_frames, window_span
from tdmi_core.models import build_model, load_model_config
from tdmi_core.runtime.backends.torch_backend import TorchBackend
from tdmi_core.runtime.estimator import StreamingPoseEstimator
from tdmi_core.runtime.types import TrackedBox

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "posetrack_train"


def served_windows(window: str, delta: int, pushes: int, flush: bool) -> list[torch.Tensor]:
    """``[T, S, C, h', w']`` (pooled) stage features of every window a tiny model's head gets from the runtime,
    for ``pushes`` random frames with one still person (one crop box: equal frames give equal features)."""
    cfg = load_model_config("tdmi_lite", name=f"tiny_{window}", width=8, input_size_hw=(64, 64),
                            heatmap_size_hw=(16, 16), rdm_hidden=8, delta=delta, window=window)
    torch.manual_seed(0)
    backend = TorchBackend(build_model(cfg).eval())
    windows: list[torch.Tensor] = []
    head = backend.temporal_head
    backend.temporal_head = lambda motion, visual: windows.append(motion[0].clone()) or head(motion, visual)
    est = StreamingPoseEstimator(backend, cfg)
    rng = np.random.default_rng(0)
    box = TrackedBox(0, [10.0, 10.0, 50.0, 70.0])
    for _ in range(pushes):
        est.push(rng.integers(0, 256, (80, 64, 3), dtype=np.uint8), [box])
    if flush:
        est.flush()
    return windows


def test_interior_window() -> None:
    assert window_frame_indices(5, 10, 2) == [3, 4, 5, 6, 7]


def test_start_pads_earlier_frames_with_the_key_frame() -> None:
    assert window_frame_indices(0, 10, 2) == [0, 0, 0, 1, 2]
    assert window_frame_indices(1, 10, 2) == [1, 0, 1, 2, 3]


def test_end_pads_later_frames_with_t_plus_1_else_key() -> None:
    assert window_frame_indices(8, 10, 2) == [6, 7, 8, 9, 9]  # t+2 missing -> t+1
    assert window_frame_indices(9, 10, 2) == [7, 8, 9, 9, 9]  # nothing later -> key frame
    assert window_frame_indices(9, 11, 2) == [7, 8, 9, 10, 10]
    assert window_frame_indices(0, 1, 2) == [0, 0, 0, 0, 0]
    # the case where the two old copies disagreed: t+1 (6), not the last frame (7)
    assert window_frame_indices(5, 8, 3) == [2, 3, 4, 5, 6, 7, 6]


def test_errors() -> None:
    with pytest.raises(ValueError, match="outside"):
        window_frame_indices(10, 10, 2)
    with pytest.raises(ValueError, match="delta"):
        window_frame_indices(0, 10, -1)


@given(st.integers(1, 40), st.integers(0, 4), st.data())
def test_window_properties(num_frames: int, delta: int, data) -> None:
    key = data.draw(st.integers(0, num_frames - 1))
    ids = window_frame_indices(key, num_frames, delta)
    assert len(ids) == 2 * delta + 1 and ids[delta] == key
    assert all(0 <= i < num_frames for i in ids)
    for offset, index in zip(range(-delta, delta + 1), ids):
        if 0 <= key + offset < num_frames:
            assert index == key + offset  # frames that exist are used as they are
        elif offset < 0:
            assert index == key  # missing earlier frame -> key frame
        else:
            assert index == (key + 1 if key + 1 < num_frames else key)  # missing later -> t+1, else key


def test_training_and_serving_pad_the_window_end_the_same_way() -> None:
    """delta = 3, key frame 5 of an 8-frame sequence: both sides build frames [2, 3, 4, 5, 6, 7, 6]."""
    delta, key, n = 3, 5, 8
    # training: the dataset's window for a person labelled in frame 5 of the 8-frame fixture video
    videos = read_split(FIXTURES / "posetrack18" / "train")
    assert videos[0].num_frames == n
    refs = [r for r in gt_sample_refs(videos) if r.frame_index == key]
    dataset = PoseTrackWindowDataset(videos, FIXTURES, refs[:1], (64, 48), (16, 12), 3.0, delta)
    frames = dataset[0]["frames"]  # [T, 3, H, W] crops of the window's frames, all with the key box
    assert torch.equal(frames[6], frames[4]) and not torch.equal(frames[6], frames[5])  # frame 6 twice, not 7

    # serving: the runtime's window for key frame 5 once frame 7 is the last (flush pads the end)
    window = served_windows("symmetric", delta, pushes=n, flush=True)[key]  # equal frames: equal features
    assert torch.equal(window[6], window[4]) and not torch.equal(window[6], window[5])


def test_window_kinds_and_their_reach() -> None:
    assert window_frames("symmetric", 5, 10, 2) == window_frame_indices(5, 10, 2)
    assert window_frames("causal", 1, 10, 2) == [0, 0, 0, 0, 1]  # before the start: frame 0, time order kept
    assert window_frames("causal", 6, 10, 2) == [2, 3, 4, 5, 6]
    assert window_frames("single_frame", 6, 10, 2) == [6] * 5
    assert [window_span(w, 2) for w in WINDOWS] == [(2, 2), (4, 0), (0, 0)]
    with pytest.raises(ValueError, match="window"):
        window_frames("future", 0, 1, 2)


def test_training_and_serving_clamp_the_causal_window_start_the_same_way(tmp_path) -> None:
    """delta = 2, key frame 1 of a causal model: both sides build frames [0, 0, 0, 0, 1]."""
    from tdmi_core.train.distill_cache import build_crop_cache, cache_meta

    # training: the distillation cache's window for a person labelled in frame 1 of the fixture video
    videos = read_split(FIXTURES / "posetrack18" / "train")
    meta = cache_meta(videos, (64, 48), delta=2, padding=1.25, context=1.0, key_frame_stride=1, causal=True)
    cache = build_crop_cache(videos, FIXTURES, tmp_path, meta, progress=False)
    refs = gt_sample_refs(videos, min_labelled_joints=1, key_frame_stride=1)  # the cache's window order
    crops = cache.crops[next(i for i, r in enumerate(refs) if r.frame_index == 1)]  # [T, H, W, 3], key last
    assert all(np.array_equal(crops[j], crops[0]) for j in range(4)) and not np.array_equal(crops[3], crops[4])

    # serving: the runtime's window for key frame 1, emitted when frame 1 is pushed
    window = served_windows("causal", 2, pushes=2, flush=False)[1]
    assert all(torch.equal(window[j], window[0]) for j in range(4)) and not torch.equal(window[3], window[4])
