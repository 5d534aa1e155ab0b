"""Two-phase CPU distillation (tdmi_core.train.distill) on tiny synthetic videos, with the real MoveNet trunk."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tdmi_core.codec import HeatmapCodec
from tdmi_core.data.posetrack import FrameRecord, PersonAnnotation, VideoRecord
from tdmi_core.models.weights import load_weights
from tdmi_core.skeleton import KEYPOINT_NAMES, NUM_KEYPOINTS
from tdmi_core.train import distill as D
from tdmi_core.train.distill_cache import build_crop_cache, cache_meta, load_crop_cache

REPO = Path(__file__).resolve().parents[2]
IN_HW = (64, 64)  # small crops keep the MobileNetV2 trunk fast in tests (multiples of 32)


def tiny_config(tmp_path: Path, **overrides) -> D.DistillConfig:
    base = dict(
        backbone_onnx=str(REPO / "weights" / "movenet_lightning.onnx"),
        cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / "run"), key_frame_stride=1,
        phase1_steps=8, phase1_batch_size=4, phase1_lr=3e-3, trunk_lr_scale=0.1,
        phase2_steps=8, phase2_batch_size=4, phase2_lr=3e-3, warmup_steps=1, final_lr_fraction=1.0,
        flip_prob=0.5, rotation_prob=0.5, degrade_prob=0.5, checkpoint_every=4, progress=False,
        student_weights=str(tmp_path / "s.pt"), baseline_weights=str(tmp_path / "b.pt"),
        loss_plot=str(tmp_path / "loss.png"), torch_threads=1,
    )
    base.update(overrides)
    return D.DistillConfig(**base)


def synthetic_video(root: Path, num_frames: int = 6) -> VideoRecord:
    """A bright bar moving right on dark 96x96 frames; one person whose joints lie on the bar."""
    frames = []
    (root / "images" / "syn").mkdir(parents=True)
    for f in range(num_frames):
        image = np.full((96, 96, 3), 20, np.uint8)
        x0 = 30 + 3 * f
        cv2.rectangle(image, (x0, 20), (x0 + 12, 80), (220, 200, 180), -1)
        name = f"images/syn/{f:06d}.png"
        cv2.imwrite(str(root / name), image)
        kps = np.zeros((NUM_KEYPOINTS, 3), np.float32)
        kps[:, 0] = x0 + 6
        kps[:, 1] = np.linspace(24, 76, NUM_KEYPOINTS)
        kps[:, 2] = 1
        kps[3, 2] = 0  # one unlabelled joint
        person = PersonAnnotation(track_id=7, keypoints=kps, box_xyxy=np.array([x0 - 4, 18, x0 + 16, 82], np.float32))
        frames.append(FrameRecord(file_name=name, image_id=f, is_labeled=True, persons=(person,)))
    return VideoRecord("syn", tuple(frames), "synthetic", keypoint_names=KEYPOINT_NAMES)


def write_posetrack18(video: VideoRecord, path: Path) -> None:
    images, anns = [], []
    for f, frame in enumerate(video.frames):
        images.append({"id": 100 + f, "frame_id": 100 + f, "file_name": frame.file_name, "vid_id": video.video_id,
                       "nframes": video.num_frames, "is_labeled": True})
        for p in frame.persons:
            b = p.box_xyxy
            anns.append({"id": len(anns) + 1, "image_id": 100 + f, "category_id": 1, "track_id": p.track_id,
                         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                         "keypoints": [float(v) for v in p.keypoints.reshape(-1)]})
    cats = [{"id": 1, "name": "person", "keypoints": list(KEYPOINT_NAMES), "skeleton": []}]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    video = synthetic_video(root)
    ann = root / "ann"
    ann.mkdir()
    write_posetrack18(video, ann / "syn.json")
    return root, video, ann


def small_model_cfg(cfg: D.DistillConfig):
    from tdmi_core.models import load_model_config

    return load_model_config(cfg.model, window=cfg.window, input_size_hw=IN_HW, heatmap_size_hw=(16, 16))


@pytest.mark.parametrize("causal", [False, True])
def test_precrop_one_affine_context_and_window_rule(dataset, tmp_path, causal):
    root, video, _ = dataset
    meta = cache_meta([video], IN_HW, delta=2, padding=1.25, context=1.25, key_frame_stride=1, causal=causal)
    cache = build_crop_cache([video], root, tmp_path / "c", meta, progress=False)
    assert cache.crops.shape == (6, 5, 80, 80, 3) and isinstance(cache.crops, np.memmap)
    key = meta["key_index"]
    assert key == (4 if causal else 2)
    # key frame 0: frames before the video repeat the first frame (= the key frame here)
    assert all(np.array_equal(cache.crops[0, j], cache.crops[0, key]) for j in range(key))
    # one affine per window: the bar moves inside a fixed crop, so neighbours differ from the key frame
    assert not np.array_equal(cache.crops[3, key - 1], cache.crops[3, key])
    if causal:  # no look-ahead: the last frame of key 3's window is frame 3 itself
        assert np.array_equal(cache.crops[3, 4], cache.crops[3, key])
    assert cache.visible[0, 3] == 0 and cache.visible[0].sum() == NUM_KEYPOINTS - 1
    assert np.allclose(load_crop_cache(tmp_path / "c", meta).keypoints, cache.keypoints)
    with pytest.raises(ValueError, match="other settings"):
        load_crop_cache(tmp_path / "c", expected_meta={**meta, "context": 1.5})
    with pytest.raises(FileNotFoundError, match="precrop"):
        load_crop_cache(tmp_path / "missing")


def test_sampler_flip_swaps_joints_and_keeps_them_on_the_bar(dataset, tmp_path):
    root, video, _ = dataset
    meta = cache_meta([video], IN_HW, 2, 1.25, 1.25, 1, False)
    meta["keypoint_names"] = list(KEYPOINT_NAMES)
    cache = build_crop_cache([video], root, tmp_path / "c", meta, progress=False)
    cfg = tiny_config(tmp_path, flip_prob=1.0, rotation_prob=0.0, scale_range=(1.0, 1.0), shift_fraction=0.0)
    sampler = D.WindowSampler(cache, cfg, IN_HW)
    crops, kps, vis = sampler.sample(np.array([2]), np.random.default_rng(0), frames="all")
    assert crops.shape == (1, 5, *IN_HW, 3)
    key = crops[0, 2]
    for k in np.flatnonzero(vis[0]):
        x, y = np.round(kps[0, k]).astype(int)
        assert key[y, x].mean() > 150  # every labelled joint still lies on the bright bar
    # left/right swap: the unlabelled joint 3 (left_ear) became joint 4 (right_ear)
    assert vis[0, 4] == 0 and vis[0, 3] == 1


def test_key_frame_only_repeats_key_frame():
    window = torch.randn(2, 5, 4, 3, 2, 2)
    for key in (2, 4):
        rep = D.key_frame_only(window, key)
        assert all(torch.equal(rep[:, t], window[:, key]) for t in range(5))
        assert torch.count_nonzero(rep[:, 1:] - rep[:, :-1]) == 0  # all temporal differences vanish


def test_run_training_learns_resumes_and_writes_loadable_weights(dataset, tmp_path, monkeypatch):
    root, video, ann = dataset
    from tdmi_core.models import load_model_config

    real = load_model_config
    monkeypatch.setattr(D, "load_model_config",
                        lambda name, **kw: real(name, input_size_hw=IN_HW, heatmap_size_hw=(16, 16), **kw))
    cfg = tiny_config(tmp_path, train_annotations=str(ann), image_root=str(root))
    summary = D.run_training(cfg)
    rows = {p: [json.loads(json.dumps(r)) for r in D._read_rows(Path(cfg.output_dir) / f"losses_{p}.csv")]
            for p in ("phase1", "phase2", "phase2_single_frame")}
    p1 = [r["total"] for r in rows["phase1"]]
    assert len(p1) == 8 and np.mean(p1[-3:]) < np.mean(p1[:3])
    assert all(np.isfinite(r["mi"]) for r in rows["phase2"])
    student, scfg = load_weights(cfg.student_weights)
    twin, tcfg = load_weights(cfg.baseline_weights)
    assert tcfg.name.endswith("_single_frame") and scfg.input_size_hw == IN_HW
    assert summary["models"]["student"]["parameters"] == summary["models"]["single_frame"]["parameters"]
    # The twin wrapper feeds its head the key frame repeated: the neighbours do not matter.
    single = D.as_single_frame_model(twin)
    window = torch.randn(2, 5, 4, 24, 16, 16)
    changed = window.clone()
    changed[:, [0, 1, 3, 4]] = torch.randn_like(changed[:, [0, 1, 3, 4]])
    with torch.no_grad():
        assert torch.allclose(single.temporal_head(window), single.temporal_head(changed))
        assert not torch.allclose(student.temporal_head(window), student.temporal_head(changed))

    # Interrupted after a checkpoint and resumed: the same weights as the uninterrupted run.
    cfg2 = tiny_config(tmp_path / "again", train_annotations=str(ann), image_root=str(root), baseline_weights=None,
                       cache_dir=cfg.cache_dir, phase1_from=str(Path(cfg.output_dir) / "phase1_backbone.pt"))
    Path(cfg2.output_dir).mkdir(parents=True)
    D.run_training(D.DistillConfig(**{**cfg2.to_dict(), "phase2_steps": 4, "student_weights": str(tmp_path / "half.pt")}))
    D.run_training(cfg2)  # continues from the step-4 checkpoint
    resumed, _ = load_weights(cfg2.student_weights)
    for (name, a), b in zip(student.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="mi_form"):
        tiny_config(tmp_path, mi_form="other")
    with pytest.raises(ValueError, match="batch sizes"):
        tiny_config(tmp_path, phase2_batch_size=1)
    with pytest.raises(ValueError, match="unknown"):
        D.load_distill_config(None, not_a_field=1)


def test_targets_drop_joints_outside_the_crop():
    codec = HeatmapCodec(IN_HW, (16, 16), 2.0)
    kps = np.array([[[10.0, 10.0]] * NUM_KEYPOINTS])
    kps[0, 1] = (-30.0, 10.0)
    target, weight = D.encode_targets(codec, kps, np.ones((1, NUM_KEYPOINTS)))
    assert weight[0, 1] == 0 and weight[0, 0] == 1 and target.shape == (1, NUM_KEYPOINTS, 16, 16)


def test_next_frame_cache_pairs_consecutive_key_frames_in_one_crop(dataset, tmp_path):
    root, video, _ = dataset
    meta = cache_meta([video], IN_HW, 2, 1.25, 1.25, 1, False, next_frame=True)
    meta["keypoint_names"] = list(KEYPOINT_NAMES)
    cache = build_crop_cache([video], root, tmp_path / "c", meta, progress=False)
    assert cache.crops.shape[:2] == (6, 6) and cache.window_length == 5
    plain = build_crop_cache([video], root, tmp_path / "p", {**meta, "next_frame": False}, progress=False)
    assert np.array_equal(cache.crops[:, :5], plain.crops)  # the first T frames are the plain window
    scale = cache.affine[2, 0, 0]
    # the bar moves 3 px per frame; the successor's joints are in the key frame's crop
    step = cache.next_keypoints[2] - cache.keypoints[2]
    assert np.allclose(step[:, 0], 3 * scale, atol=1e-4) and np.allclose(step[:, 1], 0, atol=1e-4)
    assert cache.next_visible[5].sum() == 0 and cache.next_visible[2].sum() == NUM_KEYPOINTS - 1
    assert np.array_equal(load_crop_cache(tmp_path / "c", meta).next_keypoints, cache.next_keypoints)

    cfg = tiny_config(tmp_path, flip_prob=1.0, rotation_prob=0.0, scale_range=(1.0, 1.0), shift_fraction=0.0)
    sampler = D.WindowSampler(cache, cfg, IN_HW)
    crops, kps, vis = sampler.sample_pairs(np.array([1, 2]), np.random.default_rng(0))
    assert crops.shape == (2, 6, *IN_HW, 3) and kps.shape == (2, 2, NUM_KEYPOINTS, 2)
    moved = kps[:, 1] - kps[:, 0]
    assert np.allclose(moved[..., 0], -3 * scale, atol=1e-3)  # flipped: the bar now moves left
    assert vis[0, 1, 4] == 0 and vis[0, 1, 3] == 1  # flipped labels swap in both frames
    with pytest.raises(ValueError, match="next_frame"):
        D.WindowSampler(plain, cfg, IN_HW).sample_pairs(np.array([1]), np.random.default_rng(0))


def gaussian_maps(centres_xy: np.ndarray, hw=(16, 12), sigma=1.5) -> torch.Tensor:
    ys, xs = np.mgrid[:hw[0], :hw[1]]
    maps = [np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2)) for x, y in centres_xy]
    return torch.tensor(np.stack(maps), dtype=torch.float32)


def test_heatmap_peaks_are_sub_pixel_differentiable_and_safe_on_flat_maps():
    from tdmi_core.train.losses import heatmap_peaks

    centres = np.array([[4.3, 7.6], [8.0, 3.2], [6.5, 8.5]])
    maps = gaussian_maps(centres, sigma=2.0)
    maps[0] += 0.3 * gaussian_maps(np.array([[11.0, 14.0]]))[0]  # a faint second blob far away
    maps.requires_grad_(True)
    xy = heatmap_peaks(maps)
    assert torch.allclose(xy, torch.tensor(centres, dtype=torch.float32), atol=0.02)
    xy.sum().backward()
    assert maps.grad.abs().sum() > 0
    flat = heatmap_peaks(torch.full((1, 16, 12), 0.5))
    assert torch.isfinite(flat).all()


def test_velocity_loss_is_zero_when_predictions_move_as_the_teacher():
    from tdmi_core.train.losses import window_pair_velocity_loss

    first = np.array([[4.0, 7.0], [8.0, 3.0]])
    step = np.array([[1.5, -0.5], [0.0, 2.0]])
    heat = torch.stack([gaussian_maps(first), gaussian_maps(first + step)])[None]  # [1, 2, K, h, w]
    # the teacher's joints are offset by a constant error: only the displacement counts
    teacher = torch.tensor(np.stack([first + 0.7, first + 0.7 + step]), dtype=torch.float32)[None]
    weight = torch.ones(1, 2, 2)
    assert window_pair_velocity_loss(heat, teacher, weight) < 0.01
    still = torch.stack([gaussian_maps(first), gaussian_maps(first)])[None]
    assert window_pair_velocity_loss(still, teacher, weight) > 0.3
    weight[0, 1] = 0  # joints unlabelled in the second frame do not count
    assert window_pair_velocity_loss(still, teacher, weight) == 0


def test_phase2_with_velocity_loss_trains_on_window_pairs(dataset, tmp_path, monkeypatch):
    root, _, ann = dataset
    from tdmi_core.models import load_model_config

    real = load_model_config
    monkeypatch.setattr(D, "load_model_config",
                        lambda name, **kw: real(name, input_size_hw=IN_HW, heatmap_size_hw=(16, 16), **kw))
    cfg = tiny_config(tmp_path, train_annotations=str(ann), image_root=str(root), phase1_steps=2, phase2_steps=4,
                      velocity_weight=1.0)
    D.run_training(cfg)
    for name in ("phase2", "phase2_single_frame"):
        rows = D._read_rows(Path(cfg.output_dir) / f"losses_{name}.csv")
        assert len(rows) == 4 and all(np.isfinite(r["velocity"]) and r["velocity"] >= 0 for r in rows)
    assert load_crop_cache(cfg.cache_dir).meta["next_frame"] is True
    with pytest.raises(ValueError, match="even"):
        tiny_config(tmp_path, velocity_weight=1.0, phase2_batch_size=5)
