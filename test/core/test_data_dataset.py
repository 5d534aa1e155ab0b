"""Window augmentation and the torch dataset: one affine per window, flip with joint swap, targets."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tdmi_core.codec import HeatmapCodec
from tdmi_core.data.augment import AugmentConfig, flip_permutation_for, make_window_transform
from tdmi_core.data.dataset import (
    FrameReader,
    PoseTrackWindowDataset,
    detection_sample_refs,
    gt_sample_refs,
    loader_worker_kwargs,
)
from tdmi_core.data.detections import read_detections
from tdmi_core.data.posetrack import read_posetrack18, read_split
from tdmi_core.geometry import get_affine, transform_points
from tdmi_core.model_input import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from tdmi_core.skeleton import KEYPOINT_NAMES, POSETRACK_KEYPOINT_NAMES

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "posetrack_train"
INPUT_HW, HEATMAP_HW = (192, 160), (48, 40)


def _videos():
    return read_split(FIXTURES / "posetrack18" / "train")


def _dataset(augment: AugmentConfig | None, seed: int = 0, **kw) -> PoseTrackWindowDataset:
    videos = _videos()
    return PoseTrackWindowDataset(videos, FIXTURES, gt_sample_refs(videos), INPUT_HW, HEATMAP_HW, 3.0, 2, 1.25,
                                  augment, seed, **kw)


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    """[T, 3, H, W] normalised RGB -> [T, H, W, 3] uint8 BGR."""
    x = frames.numpy().transpose(0, 2, 3, 1) * np.asarray(IMAGENET_STD_RGB) * 255 + np.asarray(IMAGENET_MEAN_RGB) * 255
    return np.round(x[..., ::-1]).clip(0, 255).astype(np.uint8)


def test_flip_permutation_from_names() -> None:
    pt = flip_permutation_for(POSETRACK_KEYPOINT_NAMES)
    assert pt[1] == 1 and pt[2] == 2  # head_bottom / head_top are not a left/right pair
    assert pt[5] == 6 and pt[6] == 5 and pt[15] == 16 and pt[3] == 4
    coco = flip_permutation_for(KEYPOINT_NAMES)
    assert coco[1] == 2 and coco[2] == 1  # COCO eyes swap
    assert list(coco[coco]) == list(range(17))


def test_no_augmentation_crop_is_the_paper_crop() -> None:
    box = np.array([10.0, 20.0, 50.0, 100.0])
    tf = make_window_transform(box, 160, INPUT_HW, 1.25)
    # box 40x80 fitted to w/h = 160/192 -> 66.67 x 80, then x1.25
    np.testing.assert_allclose(tf.scale_wh, [80 * 160 / 192 * 1.25, 100.0])
    np.testing.assert_allclose(tf.matrix, get_affine(tf.center, tf.scale_wh, 0.0, (160, 192)))
    assert not tf.flip and tf.rotation_deg == 0.0


def test_augmentation_ranges_and_rates() -> None:
    cfg = AugmentConfig()
    kps = np.zeros((17, 3), np.float32)
    rots, scales, flips = [], [], []
    base = make_window_transform(np.array([10.0, 20.0, 50.0, 100.0]), 160, INPUT_HW, 1.25).scale_wh
    for i in range(600):
        tf = make_window_transform(np.array([10.0, 20.0, 50.0, 100.0]), 160, INPUT_HW, 1.25, kps, cfg,
                                   np.random.default_rng(i))
        rots.append(tf.rotation_deg)
        scales.append(tf.scale_wh[0] / base[0])
        flips.append(tf.flip)
    rots, scales = np.asarray(rots), np.asarray(scales)
    assert np.abs(rots).max() <= 45.0 + 1e-9 and scales.min() >= 0.65 - 1e-9 and scales.max() <= 1.35 + 1e-9
    assert 0.5 < np.mean(rots != 0) < 0.7  # p = 0.6
    assert 0.4 < np.mean(flips) < 0.6
    assert np.abs(rots).max() > 40 and scales.min() < 0.7 and scales.max() > 1.3


def test_half_body_crop_covers_only_half_the_body() -> None:
    video = read_posetrack18(FIXTURES / "posetrack18" / "train" / "000001_synth_train.json")
    person = video.frames[1].persons[0]
    cfg = AugmentConfig(half_body_prob=1.0, rotation_prob=0.0, scale_std=0.0, flip_prob=0.0)
    full = make_window_transform(person.box_xyxy, 160, INPUT_HW, 1.25)
    halves = [make_window_transform(person.box_xyxy, 160, INPUT_HW, 1.25, person.keypoints, cfg, np.random.default_rng(i))
              for i in range(20)]
    assert all(h.scale_wh[1] < full.scale_wh[1] * 0.9 for h in halves)
    centres_y = {round(float(h.center[1])) for h in halves}
    assert len(centres_y) == 2  # upper-body and lower-body crops both occur


def test_same_affine_for_all_frames_and_targets_on_the_joints() -> None:
    ds = _dataset(AugmentConfig(), seed=3)
    codec = HeatmapCodec(INPUT_HW, HEATMAP_HW, 3.0)
    reader = FrameReader(FIXTURES)
    for index in range(len(ds)):
        sample = ds[index]
        assert sample["frames"].shape == (5, 3, *INPUT_HW) and sample["frames"].dtype == torch.float32
        assert sample["heatmaps"].shape == (17, *HEATMAP_HW) and sample["target_weight"].shape == (17,)
        ref = ds.refs[index]
        video = ds.videos[ref.video_index]
        matrix = sample["affine"].numpy().astype(np.float64)
        crops = _to_uint8(sample["frames"])
        for t, frame_index in enumerate([max(ref.frame_index + o, 0) if o < 0 else min(ref.frame_index + o, video.num_frames - 1)
                                         for o in range(-2, 3)]):
            if ref.frame_index + (t - 2) < 0:
                frame_index = ref.frame_index
            expected = cv2.warpAffine(reader(video.frames[frame_index].file_name), matrix, (INPUT_HW[1], INPUT_HW[0]))
            assert np.abs(crops[t].astype(int) - expected.astype(int)).max() <= 1
        # decoded targets = the joints moved by the window's affine (flip swap included)
        tf = ds.window_transform(index, 160)
        kps = video.frames[ref.frame_index].persons[ref.person_index].keypoints
        moved = transform_points(kps[:, :2].astype(np.float64), tf.matrix)[tf.joint_permutation]
        coords, _ = codec.decode(sample["heatmaps"].numpy())
        w = sample["target_weight"].numpy() > 0
        assert w.sum() >= 3
        # away from the border (where the Gaussian is cut off) decoding lands within the quarter-pixel step
        stride = INPUT_HW[0] / HEATMAP_HW[0]
        inner = w & np.all((moved >= stride) & (moved <= np.array([INPUT_HW[1], INPUT_HW[0]]) - 2 * stride), axis=1)
        assert np.abs(coords[inner] - moved[inner]).max() <= 0.26 * stride + 1e-3
        # joints outside the crop get no target
        outside = (moved[:, 0] < 0) | (moved[:, 1] < 0) | (moved[:, 0] > INPUT_HW[1]) | (moved[:, 1] > INPUT_HW[0])
        assert not np.any(w & outside)
        assert not w[3] and not w[4]  # PoseTrack ears are unlabelled


def test_flip_swaps_left_and_right() -> None:
    video = read_posetrack18(FIXTURES / "posetrack18" / "train" / "000001_synth_train.json")
    person = video.frames[1].persons[0]
    base = dict(rotation_prob=0.0, scale_std=0.0, half_body_prob=0.0)
    plain = make_window_transform(person.box_xyxy, 160, INPUT_HW, 1.25, person.keypoints, AugmentConfig(flip_prob=0.0, **base), np.random.default_rng(0))
    flip = make_window_transform(person.box_xyxy, 160, INPUT_HW, 1.25, person.keypoints, AugmentConfig(flip_prob=1.0, **base), np.random.default_rng(0))
    a = transform_points(person.keypoints[:, :2].astype(np.float64), plain.matrix)[plain.joint_permutation]
    b = transform_points(person.keypoints[:, :2].astype(np.float64), flip.matrix)[flip.joint_permutation]
    ls, rs = POSETRACK_KEYPOINT_NAMES.index("left_shoulder"), POSETRACK_KEYPOINT_NAMES.index("right_shoulder")
    # the flipped crop's left shoulder is where the right shoulder was, mirrored about the crop centre
    # (HRNet's convention: flip the image about x = (W - 1) / 2, then crop around the mirrored centre)
    np.testing.assert_allclose(b[ls, 0], INPUT_HW[1] - a[rs, 0], atol=1e-6)
    np.testing.assert_allclose(b[ls, 1], a[rs, 1], atol=1e-6)
    # the image content flips too: mirrored crop == flipped crop (up to 1 px interpolation alignment)
    image = FrameReader(FIXTURES)(video.frames[1].file_name)
    crop_plain = cv2.warpAffine(image, plain.matrix, (INPUT_HW[1], INPUT_HW[0]))
    crop_flip = cv2.warpAffine(image, flip.matrix, (INPUT_HW[1], INPUT_HW[0]))
    diff = np.abs(crop_flip[:, ::-1].astype(int) - crop_plain.astype(int))
    assert np.median(diff) <= 3


def test_augmentation_is_reproducible_per_epoch_and_index() -> None:
    a, b = _dataset(AugmentConfig(), seed=5), _dataset(AugmentConfig(), seed=5)
    torch.testing.assert_close(a[2]["frames"], b[2]["frames"])
    a.set_epoch(1)
    assert not torch.equal(a[2]["affine"], b[2]["affine"])
    b.set_epoch(1)
    torch.testing.assert_close(a[2]["affine"], b[2]["affine"])


def test_dataloader_with_workers_and_cache() -> None:
    ds = _dataset(None, frame_cache_size=16)
    loader = DataLoader(ds, batch_size=4, **loader_worker_kwargs(2))
    batches = list(loader)
    assert sum(b["frames"].shape[0] for b in batches) == len(ds)
    assert batches[0]["frames"].shape == (4, 5, 3, *INPUT_HW)
    single = ds[1]
    torch.testing.assert_close(batches[0]["frames"][1], single["frames"])
    assert len(ds.reader._cache) > 0


def test_frame_cache_is_bounded_and_missing_frames_raise(tmp_path: Path) -> None:
    reader = FrameReader(FIXTURES, cache_size=2)
    for t in range(4):
        reader(f"images/train/000001_synth_train/{t:06d}.jpg")
    assert list(reader._cache) == [f"images/train/000001_synth_train/{t:06d}.jpg" for t in (2, 3)]
    with pytest.raises(FileNotFoundError, match="cannot read frame"):
        FrameReader(tmp_path)("nope.jpg")


def test_detection_samples_for_prediction() -> None:
    videos = read_split(FIXTURES / "posetrack18" / "val")
    dets = read_detections(FIXTURES / "detections" / "val_boxes.json", score_threshold=0.5)
    refs = detection_sample_refs(videos, dets)
    assert len(refs) == 6 and all(r.person_index == -1 for r in refs)
    ds = PoseTrackWindowDataset(videos, FIXTURES, refs, INPUT_HW, HEATMAP_HW)
    sample = ds[0]
    assert float(sample["target_weight"].sum()) == 0.0 and sample["score"] == pytest.approx(refs[0].score)


def test_key_frame_stride_keeps_every_nth_labelled_frame() -> None:
    videos = _videos()
    all_refs = gt_sample_refs(videos)
    strided = gt_sample_refs(videos, key_frame_stride=2)
    assert sorted({r.frame_index for r in all_refs}) == [1, 2, 3, 4, 5, 6]
    assert sorted({r.frame_index for r in strided}) == [1, 3, 5]
    assert len(strided) == len([r for r in all_refs if r.frame_index in (1, 3, 5)])
    with pytest.raises(ValueError, match="key_frame_stride"):
        gt_sample_refs(videos, key_frame_stride=0)


def test_detections_match_by_video_and_frame_and_mismatch_raises() -> None:
    from tdmi_core.data.detections import FrameDetections

    videos = read_split(FIXTURES / "posetrack18" / "val")
    box = FrameDetections(np.array([[10, 10, 50, 100]], np.float32), np.array([0.9], np.float32))
    other_root = {f"some/other/root/{f.file_name.split('/', 2)[-1]}": box for f in videos[0].frames}
    assert len(detection_sample_refs(videos, other_root)) == 6
    with pytest.raises(ValueError, match="none of the 1 detection image names matches"):
        detection_sample_refs(videos, {"images/val/999999_other/000000.jpg": box})
