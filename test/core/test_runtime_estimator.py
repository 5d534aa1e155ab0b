"""Tests for the streaming estimator: reuse equals recompute, modes, padding, eviction, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tdmi_core.codec import HeatmapCodec
from tdmi_core.geometry import transform_points, warp_crop
from tdmi_core.model_input import pixel_normalization, window_frame_indices
from tdmi_core.models import build_model, load_model_config
from tdmi_core.runtime.backends.torch_backend import TorchBackend
from tdmi_core.runtime.crops import CropBatch, CropBox, Normalizer, crop_boxes, moved_beyond
from tdmi_core.runtime.estimator import StreamingPoseEstimator
from tdmi_core.runtime.types import FramePoses, TrackedBox

DELTA = 2


def tiny_cfg():
    return load_model_config(
        "tdmi_lite", name="tiny_test", width=8, input_size_hw=(64, 64), heatmap_size_hw=(16, 16), rdm_hidden=8
    )


class RecordingBackend:
    """Wraps a real backend and keeps every temporal-head output (to compare heatmaps)."""

    def __init__(self, inner: TorchBackend) -> None:
        self.inner = inner
        self.name, self.device, self.input_dtype, self.max_batch = inner.name, inner.device, inner.input_dtype, None
        self.heads: list[torch.Tensor] = []
        self.backbone_batches: list[int] = []

    def backbone(self, crops: torch.Tensor) -> torch.Tensor:
        self.backbone_batches.append(crops.shape[0])
        return self.inner.backbone(crops)

    def temporal_head(self, windows: torch.Tensor) -> torch.Tensor:
        out = self.inner.temporal_head(windows)
        self.heads.append(out.clone())
        return out


@pytest.fixture(scope="module")
def model_and_cfg():
    torch.manual_seed(0)
    cfg = tiny_cfg()
    return build_model(cfg).eval(), cfg


def make_images(n: int, seed: int = 0, hw: tuple[int, int] = (120, 160)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(hw[0], hw[1], 3), dtype=np.uint8)
    # frames differ (a moving band) so temporal differences are not zero
    return [np.roll(base, 3 * i, axis=1) for i in range(n)]


def reference_heatmaps(model, cfg, images, idxs, crop: CropBox) -> torch.Tensor:
    """Recompute one window from scratch with the monolithic model and one crop box, the crops made
    and normalised as the training dataset makes them (warp_crop, numpy)."""
    in_h, in_w = cfg.input_size_hw
    crops = np.stack([warp_crop(images[i], crop.matrix, (in_w, in_h)) for i in idxs])
    shift, scale = pixel_normalization()
    x = torch.from_numpy(((crops[..., ::-1].astype(np.float32) - shift) * scale).transpose(0, 3, 1, 2).copy())
    with torch.inference_mode():
        return model(x[None])[0]


def test_causal_models_are_refused_not_served_with_the_wrong_window(model_and_cfg) -> None:
    model, cfg = model_and_cfg
    causal = load_model_config("tdmi_lite", name="tiny_causal", width=8, input_size_hw=(64, 64),
                               heatmap_size_hw=(16, 16), rdm_hidden=8, window="causal")
    with pytest.raises(ValueError, match="causal window"):
        StreamingPoseEstimator(TorchBackend(model), causal)


def test_moved_beyond_threshold() -> None:
    a = CropBox.from_box(np.array([0.0, 0, 30, 40]), (64, 48), 1.0)  # region exactly 30x40
    assert not moved_beyond(a, CropBox.from_box(np.array([2.0, 3, 32, 43]), (64, 48), 1.0), 0.1)
    assert moved_beyond(a, CropBox.from_box(np.array([4.0, 0, 34, 40]), (64, 48), 1.0), 0.1)  # 4/30 > 0.1
    assert moved_beyond(a, CropBox.from_box(np.array([0.0, 0, 36, 48]), (64, 48), 1.0), 0.1)  # grew 20 %
    assert not moved_beyond(a, a, 0.0) and moved_beyond(a, CropBox.from_box(np.array([0.0, 0, 30, 41]), (64, 48), 1.0), 0.0)


def test_crop_boxes_equal_one_by_one_and_compute_affines_only_when_used() -> None:
    boxes = np.array([[0.0, 0, 30, 40], [10.0, 20, 50, 30]])
    many = crop_boxes(boxes, (64, 48), 1.25)
    for crop, box in zip(many, boxes):
        one = CropBox.from_box(box, (64, 48), 1.25)
        assert crop.key == one.key and "matrix" not in vars(crop)  # lazy
        np.testing.assert_array_equal(crop.matrix, one.matrix)
        np.testing.assert_array_equal(crop.inverse, one.inverse)


@pytest.mark.parametrize("channels_last", [False, True])
def test_crop_batch_and_normalizer_match_the_training_dataset_and_reuse_buffers(channels_last: bool) -> None:
    images = make_images(3, seed=2)
    crops = [CropBox.from_box(np.array(b), (64, 64)) for b in ([10.0, 5, 60, 100], [70.0, 0, 150, 119], [0.0, 0, 5, 5])]
    batch = CropBatch((64, 64))
    got = batch(images, [c.matrix for c in crops])
    want = np.stack([warp_crop(img, c.matrix, (64, 64)) for img, c in zip(images, crops)])
    np.testing.assert_array_equal(got, want)
    assert np.shares_memory(batch(images[:1], [crops[0].matrix]), got)  # the same buffer again
    normalize = Normalizer("cpu", channels_last=channels_last)
    x = normalize(want)
    shift, scale = pixel_normalization()
    dataset_formula = ((want[..., ::-1].astype(np.float32) - shift) * scale).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(x.numpy(), dataset_formula)  # bit for bit: one rule for training and serving
    assert x.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert normalize(want[:2]).data_ptr() == x.data_ptr()
    assert Normalizer("cpu", torch.bfloat16)(want).dtype == torch.bfloat16


def run_stream(est, images, boxes_per_frame, flush=True):
    out: list[FramePoses] = []
    for i, (img, boxes) in enumerate(zip(images, boxes_per_frame)):
        tracks = [TrackedBox(tid, b, 0.9) for tid, b in boxes.items()]
        out += est.push(img, tracks, token=("frame", i))
    if flush:
        out += est.flush()
    return out


def test_streaming_with_held_box_equals_recompute_with_that_box(model_and_cfg) -> None:
    model, cfg = model_and_cfg
    backend = RecordingBackend(TorchBackend(model))
    est = StreamingPoseEstimator(backend, cfg, mode="streaming", hold_threshold=0.1)
    n = 9
    images = make_images(n)
    rng = np.random.default_rng(1)
    # two people jittering by < 1 px (well inside the hold threshold), one joins at frame 3
    base = {0: np.array([20.0, 10, 60, 100]), 1: np.array([90.0, 20, 130, 110]), 2: np.array([50.0, 30, 80, 90])}
    boxes = [
        {tid: b + rng.uniform(-0.8, 0.8, 4) for tid, b in base.items() if tid != 2 or i >= 3} for i in range(n)
    ]
    results = run_stream(est, images, boxes)
    assert [r.frame_index for r in results] == list(range(n))
    assert [r.token for r in results] == [("frame", i) for i in range(n)]
    held = {tid: CropBox.from_box(boxes[0 if tid != 2 else 3][tid], cfg.input_size_hw) for tid in base}
    codec = HeatmapCodec(cfg.input_size_hw, cfg.heatmap_size_hw)
    heads = iter(backend.heads)
    for r in results:
        hm_batch = next(heads)
        assert [p.track_id for p in r.poses] == sorted(boxes[r.frame_index])
        for j, pose in enumerate(r.poses):
            idxs = window_frame_indices(r.frame_index, n, DELTA)
            ref = reference_heatmaps(model, cfg, images, idxs, held[pose.track_id])
            torch.testing.assert_close(hm_batch[j], ref, rtol=1e-4, atol=1e-5)
            coords, scores = codec.decode(ref.numpy())
            np.testing.assert_allclose(pose.keypoints[:, :2], transform_points(coords, held[pose.track_id].inverse), atol=1e-3)
            np.testing.assert_allclose(pose.keypoints[:, 2], scores, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(pose.box_xyxy, boxes[r.frame_index][pose.track_id])
    # one backbone pass per person per frame: 2 people x 9 frames + person 2 (frames 1..8: 8, since its
    # first window also crops frame 1, 2 before it joined)
    assert est.stats.backbone_crops == sum(backend.backbone_batches) == 2 * n + (n - 1)
    assert est.stats.windows == sum(len(r.poses) for r in results) and est.stats.head_calls == n
    assert len(backend.heads) == n  # one batched head call per emitted frame


def test_exact_mode_uses_each_key_frames_box(model_and_cfg) -> None:
    model, cfg = model_and_cfg
    backend = RecordingBackend(TorchBackend(model))
    est = StreamingPoseEstimator(backend, cfg, mode="exact")
    n = 6
    images = make_images(n, seed=2)
    boxes = [{7: np.array([20.0 + 2 * i, 10, 60 + 2 * i, 100])} for i in range(n)]
    results = run_stream(est, images, boxes)
    for r, hm in zip(results, backend.heads):
        key_crop = CropBox.from_box(boxes[r.frame_index][7], cfg.input_size_hw)
        ref = reference_heatmaps(model, cfg, images, window_frame_indices(r.frame_index, n, DELTA), key_crop)
        torch.testing.assert_close(hm[0], ref, rtol=1e-4, atol=1e-5)
    # boxes move every frame, so every window needs its own crops (distinct frames of its window)
    assert sum(backend.backbone_batches) == sum(
        len(set(window_frame_indices(t, n, DELTA))) for t in range(n)
    )


def test_streaming_replaces_held_box_after_a_big_move(model_and_cfg) -> None:
    model, cfg = model_and_cfg
    backend = RecordingBackend(TorchBackend(model))
    est = StreamingPoseEstimator(backend, cfg, mode="streaming", hold_threshold=0.1)
    n = 8
    images = make_images(n, seed=3)
    boxes = [{0: np.array([20.0, 10, 60, 100]) + (30.0 if i >= 4 else 0.0) * np.array([1, 0, 1, 0])} for i in range(n)]
    results = run_stream(est, images, boxes)
    for r, hm in zip(results, backend.heads):
        crop = CropBox.from_box(boxes[r.frame_index][0], cfg.input_size_hw)  # held box = box at the last jump
        ref = reference_heatmaps(model, cfg, images, window_frame_indices(r.frame_index, n, DELTA), crop)
        torch.testing.assert_close(hm[0], ref, rtol=1e-4, atol=1e-5)


def test_track_that_disappears_is_emitted_on_schedule_then_freed(model_and_cfg) -> None:
    model, cfg = model_and_cfg
    est = StreamingPoseEstimator(TorchBackend(model), cfg)
    images = make_images(12, seed=4)
    boxes = [{0: np.array([20.0, 10, 60, 100]), **({1: np.array([90.0, 20, 130, 110])} if i < 4 else {})} for i in range(12)]
    out = []
    for i in range(12):
        out += est.push(images[i], [TrackedBox(t, b) for t, b in boxes[i].items()], token=i)
        assert est.num_buffered_frames <= 2 * DELTA + 1
        if i >= 3 + DELTA + 1:
            assert est.num_tracks == 1  # track 1 last seen at frame 3, its windows are done
        assert est.num_cached_features <= est.num_tracks * (2 * DELTA + 1)
    assert [sorted(p.track_id for p in r.poses) for r in out] == [[0, 1]] * 4 + [[0]] * (12 - DELTA - 4)
    rest = est.flush()
    assert [r.frame_index for r in rest] == [10, 11] and est.num_tracks == 0 and est.num_buffered_frames == 0


def test_frames_without_people_and_short_sequences(model_and_cfg) -> None:
    model, cfg = model_and_cfg
    est = StreamingPoseEstimator(TorchBackend(model), cfg)
    img = make_images(1)[0]
    assert est.push(img, [], token="a") == []
    assert est.push(img, [TrackedBox(3, np.array([10.0, 10, 50, 90]))], token="b") == []
    out = est.flush()  # 2 frames < delta: both emitted, padded with key frame / t+1
    assert [(r.token, len(r.poses)) for r in out] == [("a", 0), ("b", 1)]
    kp = out[1].poses[0].keypoints
    assert kp.shape == (17, 3) and kp.dtype == np.float32 and np.all(np.isfinite(kp))
    assert est.flush() == []


def test_naive_mode_recomputes_and_matches(model_and_cfg) -> None:
    model, cfg = model_and_cfg
    n = 7
    images = make_images(n, seed=5)
    boxes = [{0: np.array([20.0, 10, 60, 100]), 1: np.array([90.0, 20, 130, 110])} for _ in range(n)]
    res = {}
    for cache in (True, False):
        backend = RecordingBackend(TorchBackend(model))
        est = StreamingPoseEstimator(backend, cfg, cache_features=cache)
        res[cache] = (run_stream(est, images, boxes), sum(backend.backbone_batches))
    for a, b in zip(res[True][0], res[False][0]):
        for pa, pb in zip(a.poses, b.poses):
            np.testing.assert_allclose(pa.keypoints, pb.keypoints, atol=1e-4)
    assert res[True][1] == 2 * n
    assert res[False][1] == 2 * sum(len(set(window_frame_indices(t, n, DELTA))) for t in range(n))


class PeakBackend:
    """Backend whose head puts one heatmap peak where a known image point falls in the crop."""

    def __init__(self, cfg, image_point: np.ndarray) -> None:
        self.cfg, self.point = cfg, image_point
        self.name, self.device, self.input_dtype, self.max_batch = "peak", torch.device("cpu"), torch.float32, None
        self.codec = HeatmapCodec(cfg.input_size_hw, cfg.heatmap_size_hw)
        self.matrices: list[np.ndarray] = []

    def backbone(self, crops: torch.Tensor) -> torch.Tensor:
        h, w = self.cfg.heatmap_size_hw
        return torch.zeros(crops.shape[0], 4, self.cfg.width, h, w)

    def temporal_head(self, windows: torch.Tensor) -> torch.Tensor:
        m = self.matrices.pop(0)
        kp = np.repeat(transform_points(self.point[None], m), 17, axis=0)
        hm, _ = self.codec.encode(kp, np.ones(17))
        return torch.from_numpy(hm)[None].expand(windows.shape[0], -1, -1, -1)


def test_keypoints_come_back_in_image_pixels(model_and_cfg) -> None:
    _, cfg = model_and_cfg
    point = np.array([41.3, 57.9])
    backend = PeakBackend(cfg, point)
    est = StreamingPoseEstimator(backend, cfg, delta=2)
    box = np.array([20.0, 10, 60, 100])
    backend.matrices = [CropBox.from_box(box, cfg.input_size_hw).matrix] * 3
    img = make_images(1)[0]
    for _ in range(3):
        est.push(img, [TrackedBox(0, box)])
    pose = est.flush()[0].poses[0]
    stride = (box[3] - box[1]) * 1.25 / cfg.heatmap_size_hw[0]  # image pixels per heatmap pixel
    assert np.abs(pose.keypoints[:, :2] - point).max() <= 0.25 * stride + 1e-3
    assert pose.keypoints[:, 2].min() > 0.9 and pose.score > 0.9


def test_bad_inputs_raise(model_and_cfg) -> None:
    model, cfg = model_and_cfg
    backend = TorchBackend(model)
    with pytest.raises(ValueError, match="mode"):
        StreamingPoseEstimator(backend, cfg, mode="fast")
    with pytest.raises(ValueError, match="delta"):
        StreamingPoseEstimator(backend, cfg, delta=3)
    est = StreamingPoseEstimator(backend, cfg)
    with pytest.raises(ValueError, match="uint8"):
        est.push(np.zeros((10, 10, 3), np.float32), [])
    with pytest.raises(ValueError, match="twice"):
        est.push(np.zeros((10, 10, 3), np.uint8), [TrackedBox(1, [0, 0, 5, 5]), TrackedBox(1, [1, 1, 5, 5])])
    with pytest.raises(ValueError, match="x2 >= x1"):
        TrackedBox(1, [5, 0, 0, 5])
    with pytest.raises(TypeError):
        est.push(np.zeros((10, 10, 3), np.uint8), [(1, [0, 0, 5, 5])])
