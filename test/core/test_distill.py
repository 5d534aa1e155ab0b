"""Two-phase CPU distillation (tdmi_core.train.distill) and its held-out metrics, on tiny synthetic data."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tdmi_core.data.posetrack import FrameRecord, PersonAnnotation, VideoRecord
from tdmi_core.tools.distill_metrics import (
    CARD_END,
    CARD_START,
    acceleration_norms,
    paired_difference,
    score_video,
    update_model_card,
)
from tdmi_core.models import build_model
from tdmi_core.models.weights import load_weights
from tdmi_core.skeleton import KEYPOINT_NAMES, NUM_KEYPOINTS
from tdmi_core.train import distill as D
from tdmi_core.train.distill_cache import build_crop_cache, load_crop_cache, save_crop_cache

IN_HW = (64, 32)  # smallest crop the HRNet accepts (multiples of 32)


def tiny_config(tmp_path: Path, **overrides) -> D.DistillConfig:
    base = dict(
        model="tdmi_lite", input_size_hw=IN_HW, cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / "run"),
        phase1_epochs=12, phase1_batch_size=4, phase1_lr=3e-3, phase2_epochs=12, phase2_batch_size=4, phase2_lr=3e-3,
        flip_prob=0.0, rotation_prob=0.0, scale_range=(1.0, 1.0), warmup_steps=1, final_lr_fraction=1.0,
        phase2_key_stride=1, feature_batch=10, progress=False,
        student_weights=str(tmp_path / "s.pt"), baseline_weights=str(tmp_path / "b.pt"),
        loss_plot=str(tmp_path / "loss.png"),
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


@pytest.fixture(scope="module")
def video_and_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    video = synthetic_video(root)
    cfg = tiny_config(root)
    mcfg = cfg.model_config()
    cache = build_crop_cache([video], root, mcfg.input_size_hw, mcfg.heatmap_size_hw, sigma=2.0, delta=2, progress=False)
    return root, video, cache


def test_precrop_window_uses_one_affine_and_padding(video_and_cache, tmp_path):
    root, video, cache = video_and_cache
    assert cache.crops.shape == (6, 5, *IN_HW, 3) and cache.crops.dtype == np.uint8
    # key frame 0: the two earlier frames are padded with the key frame itself
    assert np.array_equal(cache.crops[0, 0], cache.crops[0, 2]) and np.array_equal(cache.crops[0, 1], cache.crops[0, 2])
    # one affine for the window: the bar moves right inside a fixed crop, so frames differ
    assert not np.array_equal(cache.crops[2, 3], cache.crops[2, 2])
    assert cache.visible[0, 3] == 0 and cache.visible[0].sum() == NUM_KEYPOINTS - 1
    assert cache.heatmaps.shape == (6, NUM_KEYPOINTS, IN_HW[0] // 4, IN_HW[1] // 4)
    save_crop_cache(cache, tmp_path / "c")
    loaded = load_crop_cache(tmp_path / "c", expected_meta=cache.meta)
    assert np.array_equal(np.asarray(loaded.crops), cache.crops)
    with pytest.raises(ValueError, match="other settings"):
        load_crop_cache(tmp_path / "c", expected_meta={**cache.meta, "sigma": 3.0})
    with pytest.raises(FileNotFoundError, match="precrop"):
        load_crop_cache(tmp_path / "missing")


def test_flip_augmentation_swaps_joints_and_mirrors_x():
    cfg = D.DistillConfig(flip_prob=1.0, rotation_prob=0.0, scale_range=(1.0, 1.0))
    crop = np.zeros((64, 32, 3), np.uint8)
    crop[10, 5] = 255
    kp = np.zeros((NUM_KEYPOINTS, 2))
    kp[5] = (5, 10)  # left_shoulder on the bright pixel
    vis = np.zeros(NUM_KEYPOINTS)
    vis[5] = 1
    perm = D.flip_permutation_for(KEYPOINT_NAMES)
    out, kp2, vis2 = D.augment_key_crop(crop, kp, vis, np.random.default_rng(0), cfg, perm)
    assert out[10, 26].max() == 255  # column 5 -> 31 - 5
    assert tuple(kp2[6]) == (26, 10) and vis2[6] == 1 and vis2[5] == 0  # now the right shoulder


def test_key_frame_only_repeats_key_frame():
    window = torch.randn(2, 5, 4, 3, 2, 2)
    rep = D.key_frame_only(window, delta=2)
    assert rep.shape == window.shape
    for t in range(5):
        assert torch.equal(rep[:, t], window[:, 2])
    assert torch.count_nonzero(rep[:, 1:] - rep[:, :-1]) == 0  # all temporal differences vanish


def test_phases_reduce_loss_and_baseline_sees_key_frame_only(video_and_cache):
    root, video, cache = video_and_cache
    cfg = tiny_config(root)
    torch.manual_seed(0)
    model = build_model(cfg.model_config())
    rows: list[dict] = []
    D.train_backbone(model, cache, cfg, rows)
    losses = [r["loss"] for r in rows]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    assert not any(p.requires_grad for p in model.backbone.parameters())  # frozen for phase 2

    feats = D.extract_window_features(model.backbone, cache.crops, np.arange(len(cache)), 10, progress=False)
    assert feats.dtype == torch.float16 and feats.shape[:3] == (6, 5, 4)
    heat, weight = torch.from_numpy(cache.heatmaps), torch.from_numpy(cache.weights)
    head_rows: list[dict] = []
    D.train_temporal_head(model, feats, heat, weight, cfg, head_rows)
    h = [r["heatmap"] for r in head_rows]
    assert np.mean(h[-3:]) < 0.7 * np.mean(h[:3])
    assert all(np.isfinite(r["mi"]) for r in head_rows)

    # The baseline wrapper feeds the head the key frame repeated: the neighbours do not matter.
    single = D.as_single_frame_model(model)
    window = feats[:2].float()
    changed = window.clone()
    changed[:, [0, 1, 3, 4]] = torch.randn_like(changed[:, [0, 1, 3, 4]])
    with torch.no_grad():
        assert torch.allclose(single.temporal_head(window), single.temporal_head(changed))
        assert not torch.allclose(model.temporal_head(window), model.temporal_head(changed))


def test_run_training_writes_loadable_weights(video_and_cache, tmp_path):
    root, video, _ = video_and_cache
    ann = tmp_path / "ann"
    ann.mkdir()
    write_posetrack18(video, ann / "syn.json")
    cfg = tiny_config(tmp_path, train_annotations=str(ann), image_root=str(root), phase1_epochs=2, phase2_epochs=2)
    summary = D.run_training(cfg)
    for path in (cfg.student_weights, cfg.baseline_weights):
        model, mcfg = load_weights(path)  # weights_only=True inside
        assert mcfg.input_size_hw == IN_HW and Path(path).stat().st_size < 25e6
    _, bcfg = load_weights(cfg.baseline_weights)
    assert bcfg.name.endswith("_single_frame")
    assert summary["models"]["student"]["parameters"] == summary["models"]["single_frame"]["parameters"]
    assert Path(cfg.loss_plot).stat().st_size > 0
    # A second run reuses the cache (memory-mapped) instead of cropping again.
    again = D.prepare_cache(cfg, cfg.model_config())
    assert isinstance(again.crops, np.memmap) and len(again) == video.num_frames


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


# ------------------------------------------------------------------------------------------------
# metrics on hand-made arrays


def test_acceleration_norms_by_hand():
    frames = np.array([0, 1, 2, 3, 5, 6, 7])  # a gap after frame 3
    x = np.array([0.0, 1.0, 3.0, 6.0, 0.0, 0.0, 4.0])  # accelerations at 1: 1, at 2: 1, at 6: 4
    xy = np.stack([x, np.zeros_like(x)], axis=1)[:, None, :]  # K = 1
    valid = np.ones((7, 1), bool)
    size = np.array([1, 2, 1, 1, 1, 2, 1], float)
    got = acceleration_norms(frames, xy, valid, size)
    np.testing.assert_allclose(np.sort(got), [0.5, 1.0, 2.0])  # 1/2 (size 2 at t=1), 1/1, 4/2
    valid[2, 0] = False  # frame 2 invalid: no triple around 1 or 2 survives
    np.testing.assert_allclose(acceleration_norms(frames, xy, valid, size), [2.0])
    # order does not matter
    perm = np.array([6, 0, 3, 1, 5, 2, 4])
    np.testing.assert_allclose(acceleration_norms(frames[perm], xy[perm], valid[perm], size[perm]), [2.0])
    with pytest.raises(ValueError, match="repeat"):
        acceleration_norms(np.array([0, 0, 1]), np.zeros((3, 1, 2)), np.ones((3, 1), bool), np.ones(3))


def test_score_video_pck_and_jitter_by_hand():
    kps = []
    frames = []
    for f in range(4):
        kp = np.zeros((NUM_KEYPOINTS, 3), np.float32)
        kp[:, 0] = 10 + f  # constant velocity: teacher jitter 0
        kp[:, 1] = 50
        kp[:, 2] = 1
        kp[0, 2] = 0  # nose never visible
        kps.append(kp)
        person = PersonAnnotation(track_id=1, keypoints=kp, box_xyxy=np.array([0, 0, 20, 100], np.float32))
        frames.append(FrameRecord(file_name=f"{f}.jpg", image_id=f, is_labeled=True, persons=(person,)))
    video = VideoRecord("v", tuple(frames), "test", keypoint_names=KEYPOINT_NAMES)
    # model A: off by 15 px (< 0.2 * 100) on every joint, at frame 2 off by 25 px (> 20): wrong there
    preds_a = {}
    for f in range(4):
        kp = kps[f].copy()
        kp[:, 1] += 25 if f == 2 else 15
        preds_a[(f, 1)] = kp
    preds_b = {(f, 1): kps[f].copy() for f in range(3)}  # model B misses frame 3 entirely
    res = score_video(video, {"a": preds_a, "b": preds_b})
    assert res["a"]["joints"] == 4 * 16
    assert res["a"]["pck@0.2"] == pytest.approx(3 / 4)
    assert res["b"]["pck@0.2"] == pytest.approx(3 / 4) and res["b"]["missing_persons"] == 1
    assert res["teacher"]["jitter"] == pytest.approx(0.0)
    # a: y offsets 15, 15, 25, 15 -> accelerations |15-30+15| = 0 at t=1? no: t=1: 25-30+15 = 10; t=2: 15-50+15 = -20
    assert res["a"]["jitter"] == pytest.approx((10 + 20) / 2 / 100)
    assert res["a"]["jitter_samples"] == 2 * 16
    assert res["b"]["jitter"] == pytest.approx(0.0) and res["b"]["jitter_samples"] == 16


def test_paired_difference_by_hand():
    # track 1: a 0.1 lower per sample over 2 samples; track 2: a 0.1 lower over 3 samples -> diff -0.1, no spread
    res = paired_difference(np.array([0.2, 0.3]), np.array([0.4, 0.6]), np.array([2, 3]), num_boot=200)
    assert res["diff"] == pytest.approx(-0.1)
    assert res["ci95_low"] == pytest.approx(-0.1) and res["ci95_high"] == pytest.approx(-0.1)
    assert res["tracks"] == 2 and res["samples"] == 5 and res["tracks_a_lower"] == 2
    # mixed signs: pooled (1 + 0 - 0 - 3) / 4 = -0.5, and the CI brackets both track-level values
    res = paired_difference(np.array([1.0, 0.0]), np.array([0.0, 3.0]), np.array([1, 3]), num_boot=500)
    assert res["diff"] == pytest.approx(-0.5)
    assert res["ci95_low"] <= -0.5 <= res["ci95_high"] and res["tracks_a_lower"] == 1
    with pytest.raises(ValueError, match="positive counts"):
        paired_difference(np.zeros(1), np.zeros(1), np.zeros(1))


def test_update_model_card(tmp_path):
    card = tmp_path / "card.md"
    card.write_text(f"# card\n{CARD_START}\nold\n{CARD_END}\ntail\n")
    assert update_model_card(card, "| new |")
    assert card.read_text() == f"# card\n{CARD_START}\n| new |\n{CARD_END}\ntail\n"
    other = tmp_path / "plain.md"
    other.write_text("no markers")
    assert not update_model_card(other, "x")


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="unknown distill config keys"):
        D.load_distill_config(None, phase3_epochs=1)
    with pytest.raises(ValueError, match="batch sizes"):
        D.DistillConfig(phase1_batch_size=1)
    with pytest.raises(ValueError, match="multiples of 32"):
        dataclasses.replace(D.DistillConfig(), input_size_hw=(100, 96)).model_config()
