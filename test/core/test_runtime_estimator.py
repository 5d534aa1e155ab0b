"""Tests for the streaming estimator: reuse equals recompute, modes, windows, streams, padding, eviction, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tdmi_core.codec import HeatmapCodec
from tdmi_core.geometry import transform_points, warp_crop
from tdmi_core.model_input import causal_window_frame_indices, pixel_normalization, window_frame_indices
from tdmi_core.models import build_model, load_model_config
from tdmi_core.runtime.backends.torch_backend import TorchBackend
from tdmi_core.runtime.crops import CropBatch, CropBox, Normalizer, crop_boxes, moved_beyond
from tdmi_core.runtime.align import align_features, feature_affine
from tdmi_core.runtime.estimator import StreamingPoseEstimator
from tdmi_core.runtime.types import FramePoses, StreamFrame, TrackedBox

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
        self.windows: list[tuple[torch.Tensor, torch.Tensor]] = []  # the head's (motion, visual) inputs
        self.backbone_batches: list[int] = []

    def backbone(self, crops: torch.Tensor) -> torch.Tensor:
        self.backbone_batches.append(crops.shape[0])
        return self.inner.backbone(crops)

    def temporal_head(self, motion: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        self.windows.append((motion.clone(), visual.clone()))
        out = self.inner.temporal_head(motion, visual)
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


def normalized_crops(cfg, images, idxs, crop: CropBox) -> torch.Tensor:
    """``[T, 3, H, W]`` crops of ``images[idxs]`` with one crop box, made and normalised as the training
    dataset makes them (warp_crop, numpy)."""
    in_h, in_w = cfg.input_size_hw
    crops = np.stack([warp_crop(images[i], crop.matrix, (in_w, in_h)) for i in idxs])
    shift, scale = pixel_normalization()
    return torch.from_numpy(((crops[..., ::-1].astype(np.float32) - shift) * scale).transpose(0, 3, 1, 2).copy())


def reference_heatmaps(model, cfg, images, idxs, crop: CropBox) -> torch.Tensor:
    """Recompute one window from scratch with the monolithic model and one crop box."""
    with torch.inference_mode():
        return model(normalized_crops(cfg, images, idxs, crop)[None])[0]


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
        est = StreamingPoseEstimator(backend, cfg, mode="streaming", cache_features=cache)
        res[cache] = (run_stream(est, images, boxes), sum(backend.backbone_batches))
    for a, b in zip(res[True][0], res[False][0]):
        for pa, pb in zip(a.poses, b.poses):
            np.testing.assert_allclose(pa.keypoints, pb.keypoints, atol=1e-4)
    assert res[True][1] == 2 * n
    assert res[False][1] == 2 * sum(len(set(window_frame_indices(t, n, DELTA))) for t in range(n))


@pytest.fixture(scope="module")
def causal_model_and_cfg():
    torch.manual_seed(1)
    cfg = load_model_config("tdmi_lite", name="tiny_causal", width=8, input_size_hw=(64, 64),
                            heatmap_size_hw=(16, 16), rdm_hidden=8, window="causal")
    return build_model(cfg).eval(), cfg


def moving_boxes(n: int) -> list[dict[int, np.ndarray]]:
    """Two people whose boxes move and resize every frame; person 1 joins at frame 2."""
    return [{0: np.array([20.0 + 3 * i, 10, 60 + 3.5 * i, 100 + i]),
             **({1: np.array([90.0 - 2 * i, 20, 130 - 2 * i, 110])} if i >= 2 else {})} for i in range(n)]


@pytest.mark.parametrize("mode", ["exact", "aligned"])
def test_causal_window_is_emitted_at_its_own_push_and_equals_recompute(causal_model_and_cfg, mode) -> None:
    """Frame t's poses come out of push t (no look-ahead); the key frame is the window's last frame."""
    model, cfg = causal_model_and_cfg
    backend = RecordingBackend(TorchBackend(model))
    est = StreamingPoseEstimator(backend, cfg, mode=mode)
    assert (est.reach, est.lag) == (2 * DELTA, 0)
    n = 7
    images, boxes = make_images(n, seed=6), moving_boxes(n)
    for i in range(n):
        out = est.push(images[i], [TrackedBox(t, b) for t, b in boxes[i].items()], token=i)
        assert [r.token for r in out] == [i] and out[0].frame_index == i
        assert [p.track_id for p in out[0].poses] == sorted(boxes[i])
        idxs = causal_window_frame_indices(i, i + 1, DELTA)  # frames before the stream clamp to frame 0
        for j, tid in enumerate(sorted(boxes[i])):
            key_crop = CropBox.from_box(boxes[i][tid], cfg.input_size_hw)
            if mode == "exact":
                ref = reference_heatmaps(model, cfg, images, idxs, key_crop)
                torch.testing.assert_close(backend.heads[-1][j], ref, rtol=1e-4, atol=1e-5)
            else:  # the key frame (last) is cropped with its own box: its features are the exact ones
                with torch.inference_mode():
                    key_features = model.backbone(normalized_crops(cfg, images, [i], key_crop))[0]
                motion, visual = backend.windows[-1]
                want_motion = model.temporal_head.tde.pool(key_features)
                torch.testing.assert_close(motion[j, cfg.key_index], want_motion, rtol=1e-4, atol=1e-5)
                torch.testing.assert_close(visual[j, 0], key_features[-1], rtol=1e-4, atol=1e-5)
    assert est.flush() == [] and est.num_buffered_frames == 0
    person_frames = sum(len(b) for b in boxes)
    if mode == "aligned":  # one backbone pass per person-frame (+ frame 0 and 1 for person 1's first window)
        assert est.stats.backbone_crops == person_frames + 2
        assert est.stats.aligned_features > 0


def test_causal_streaming_reuses_the_held_box(causal_model_and_cfg) -> None:
    model, cfg = causal_model_and_cfg
    backend = RecordingBackend(TorchBackend(model))
    est = StreamingPoseEstimator(backend, cfg, mode="streaming", hold_threshold=0.1)
    n = 8
    images = make_images(n, seed=7)
    rng = np.random.default_rng(2)
    box = np.array([20.0, 10, 60, 100])
    boxes = [box + rng.uniform(-0.5, 0.5, 4) for _ in range(n)]
    held = CropBox.from_box(boxes[0], cfg.input_size_hw)
    for i in range(n):
        (out,) = est.push(images[i], [TrackedBox(0, boxes[i])])
        ref = reference_heatmaps(model, cfg, images, causal_window_frame_indices(i, n, DELTA), held)
        torch.testing.assert_close(backend.heads[-1][0], ref, rtol=1e-4, atol=1e-5)
        assert est.num_buffered_frames <= 2 * DELTA + 1
    assert est.stats.backbone_crops == n  # one pass per frame


def test_single_frame_serves_the_key_frame_repeated_as_its_training_did(model_and_cfg) -> None:
    from tdmi_core.train.distill import as_single_frame_model

    model, cfg = model_and_cfg
    twin = as_single_frame_model(model)  # how single-frame weights are trained and evaluated
    est = StreamingPoseEstimator(TorchBackend(model), cfg, mode="aligned", single_frame=True)
    n = 5
    images, boxes = make_images(n, seed=8), moving_boxes(n)
    for i in range(n):
        (out,) = est.push(images[i], [TrackedBox(t, b) for t, b in boxes[i].items()], token=i)
        assert out.token == i  # no lag
        for pose in out.poses:
            crop = CropBox.from_box(boxes[i][pose.track_id], cfg.input_size_hw)
            with torch.inference_mode():  # the twin fed a real window sees only its key frame
                x = normalized_crops(cfg, images, window_frame_indices(i, n, DELTA), crop)
                ref = twin.temporal_head(twin.backbone(x)[None])[0].numpy()
            coords, _ = HeatmapCodec(cfg.input_size_hw, cfg.heatmap_size_hw).decode(ref)
            np.testing.assert_allclose(pose.keypoints[:, :2], transform_points(coords, crop.inverse), atol=1e-3)
    assert est.stats.backbone_crops == sum(len(b) for b in boxes) and est.num_buffered_frames == 0


def test_align_features_matches_roi_align_and_keeps_an_unmoved_box() -> None:
    """The feature grid geometry, checked against torchvision's RoIAlign (an independent implementation)."""
    from torchvision.ops import roi_align

    hw = (64, 48)
    source = CropBox.from_region(np.array([100.0, 80.0]), np.array([48.0, 64.0]), hw)  # 1 image px = 1 crop px
    targets = [CropBox.from_region(np.array([104.0, 80.0]), np.array([48.0, 64.0]), hw),  # 1 feature px right
               CropBox.from_region(np.array([101.3, 78.2]), np.array([50.0, 66.0]), hw)]  # sub-pixel, rescaled
    features = torch.randn(1, 2, 3, 16, 12)
    affines = np.stack([feature_affine(source, t, 4) for t in targets])
    out = align_features(features.expand(2, -1, -1, -1, -1), affines)
    torch.testing.assert_close(out[0, ..., :-1], features[0, ..., 1:])  # an exact shift by one feature pixel
    torch.testing.assert_close(out[0, ..., -1], features[0, ..., -1])  # past the edge: the border repeated
    (ax, _, bx), (_, ay, by) = affines[1]
    # RoIAlign (aligned=True, one sample per bin) samples x = x1 - 0.5 + (u + 0.5) * bin: bin = a, x1 = b + 0.5 - a / 2
    x1, y1 = bx + 0.5 - ax / 2, by + 0.5 - ay / 2
    roi = torch.tensor([[0.0, x1, y1, x1 + ax * 12, y1 + ay * 16]], dtype=torch.float32)
    ref = roi_align(features.reshape(1, 6, 16, 12), roi, (16, 12), 1.0, sampling_ratio=1, aligned=True).reshape(2, 3, 16, 12)
    inside = (slice(None), slice(None), slice(1, 15), slice(1, 11))  # where no sample leaves the map
    torch.testing.assert_close(out[1][inside], ref[inside], rtol=1e-5, atol=1e-5)
    identity = align_features(features, feature_affine(source, source, 4)[None])
    torch.testing.assert_close(identity, features)


def test_aligned_mode_equals_exact_while_boxes_stay_put_and_costs_one_pass_when_they_move(model_and_cfg) -> None:
    model, cfg = model_and_cfg
    n = 7
    images = make_images(n, seed=9)
    still = [{0: np.array([20.0, 10, 60, 100]), 1: np.array([90.0, 20, 130, 110])} for _ in range(n)]
    results = {}
    for mode in ("exact", "aligned"):
        est = StreamingPoseEstimator(TorchBackend(model), cfg, mode=mode)
        results[mode] = run_stream(est, images, still)
    for a, b in zip(results["exact"], results["aligned"]):
        for pa, pb in zip(a.poses, b.poses):
            np.testing.assert_array_equal(pa.keypoints, pb.keypoints)
    costs = {}
    for mode in ("exact", "aligned"):
        est = StreamingPoseEstimator(TorchBackend(model), cfg, mode=mode)
        run_stream(est, images, moving_boxes(n))
        costs[mode] = est.stats.backbone_crops
    person_frames = sum(len(b) for b in moving_boxes(n))
    # aligned: each person-frame once, plus frames 0-1 for person 1's first window (it joined at frame 2)
    assert costs["aligned"] == person_frames + 2
    assert costs["exact"] > 3 * person_frames


def test_several_streams_batch_into_one_backbone_and_one_head_call(model_and_cfg) -> None:
    model, cfg = model_and_cfg
    n = 6
    cameras = {"left": (make_images(n, seed=10), moving_boxes(n)), "right": (make_images(n, seed=11), moving_boxes(n)[::-1])}
    alone = {}
    for cam, (images, boxes) in cameras.items():
        alone[cam] = run_stream(StreamingPoseEstimator(TorchBackend(model), cfg, mode="aligned"), images, boxes)
    backend = RecordingBackend(TorchBackend(model))
    est = StreamingPoseEstimator(backend, cfg, mode="aligned")
    together: dict[str, list[FramePoses]] = {cam: [] for cam in cameras}
    for i in range(n):
        step = [StreamFrame(cam, images[i], [TrackedBox(t, b, 0.9) for t, b in boxes[i].items()], ("frame", i))
                for cam, (images, boxes) in cameras.items()]
        calls_before = len(backend.backbone_batches)
        for cam, out in zip(cameras, est.push_many(step)):
            together[cam] += out
        # each step: one backbone call for the new frames' persons of both cameras (plus, the step a person
        # joins, one for its earlier window frames, cropped with its first box) and one head call for both
        assert backend.backbone_batches[calls_before] == sum(len(boxes[i]) for _, boxes in cameras.values())
        assert len(backend.backbone_batches) - calls_before <= 2
        assert len(backend.heads) == max(0, i - DELTA + 1)
    for cam in cameras:
        together[cam] += est.flush(cam)
        assert [r.token for r in together[cam]] == [r.token for r in alone[cam]]
        for a, b in zip(alone[cam], together[cam]):
            for pa, pb in zip(a.poses, b.poses):
                np.testing.assert_allclose(pa.keypoints, pb.keypoints, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="one frame per stream"):
        est.push_many([StreamFrame("left", images[0], []), StreamFrame("left", images[0], [])])
    with pytest.raises(ValueError, match="uint8"):
        est.push_many([StreamFrame("left", images[0], []), StreamFrame("right", np.zeros((4, 4)), [])])
    assert est.num_buffered_frames == 0  # a step with a bad frame is refused whole


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

    def temporal_head(self, motion: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        m = self.matrices.pop(0)
        kp = np.repeat(transform_points(self.point[None], m), 17, axis=0)
        hm, _ = self.codec.encode(kp, np.ones(17))
        return torch.from_numpy(hm)[None].expand(motion.shape[0], -1, -1, -1)


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
    with pytest.raises(ValueError, match="cache_features"):
        StreamingPoseEstimator(backend, cfg, mode="aligned", cache_features=False)
    est = StreamingPoseEstimator(backend, cfg)
    with pytest.raises(ValueError, match="uint8"):
        est.push(np.zeros((10, 10, 3), np.float32), [])
    with pytest.raises(ValueError, match="twice"):
        est.push(np.zeros((10, 10, 3), np.uint8), [TrackedBox(1, [0, 0, 5, 5]), TrackedBox(1, [1, 1, 5, 5])])
    with pytest.raises(ValueError, match="x2 >= x1"):
        TrackedBox(1, [5, 0, 0, 5])
    with pytest.raises(TypeError):
        est.push(np.zeros((10, 10, 3), np.uint8), [(1, [0, 0, 5, 5])])


def test_cpu_features_come_in_pieces_under_the_block_size_with_the_same_poses(model_and_cfg, monkeypatch) -> None:
    """Per-frame feature tensors over malloc's mmap threshold page-fault every frame; on CPU the backbone and
    the resampling run in pieces of at most CPU_BLOCK_BYTES of output, which must not change a number."""
    import tdmi_core.runtime.estimator as estimator_module

    model, cfg = model_and_cfg
    n = 6
    images, boxes = make_images(n, seed=12), moving_boxes(n)
    whole = run_stream(StreamingPoseEstimator(TorchBackend(model), cfg, mode="aligned"), images, boxes)
    est = StreamingPoseEstimator(RecordingBackend(TorchBackend(model)), cfg, mode="aligned")
    monkeypatch.setattr(estimator_module, "CPU_BLOCK_BYTES", est._feature_bytes)  # one person-frame per piece
    resampled: list[int] = []
    align = estimator_module.align_features
    monkeypatch.setattr(estimator_module, "align_features", lambda f, a: resampled.append(len(f)) or align(f, a))
    pieces = run_stream(est, images, boxes)
    assert set(est.backend.backbone_batches) == {1} and len(est.backend.backbone_batches) == est.stats.backbone_crops
    pooled_per_piece = cfg.tde_stride**2  # a pooled person-frame is 1 / stride² of a piece here
    assert resampled and max(resampled) <= pooled_per_piece and len(resampled) > est.stats.head_calls
    assert [r.token for r in pieces] == [r.token for r in whole]
    for a, b in zip(whole, pieces):
        for pa, pb in zip(a.poses, b.poses, strict=True):
            np.testing.assert_allclose(pa.keypoints, pb.keypoints, rtol=1e-5, atol=1e-5)
