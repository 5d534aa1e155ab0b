"""Teacher-labelled set: real frames labelled by MoveNet, tracked, written as PoseTrack18 json, read back."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tdmi_core.data.posetrack import read_split
from tdmi_core.data.teacher import (
    DEFAULT_VIDEOS,
    smooth_track,
    TeacherConfig,
    TeacherVideo,
    approx_head_box,
    build_dataset,
    main,
    render_overlay,
)
from tdmi_core.skeleton import KEYPOINT_INDEX, KEYPOINT_NAMES

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "videos"
VIDEO = {v.name: v for v in DEFAULT_VIDEOS}


def require_assets(*names: str) -> None:
    for name in names:
        if not (ASSETS / name).is_file():
            pytest.skip(f"{ASSETS / name} absent: run `python scripts/fetch_assets.py` (make setup does)")


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """12 frames of the dancer (train, Thunder labels) and 12 of vtest's held-out end (val)."""
    require_assets("mg_dancer.avi", "vtest.avi")
    out = tmp_path_factory.mktemp("teacher")
    cfg = TeacherConfig(max_frames=12, min_track_frames=3)
    stats = build_dataset(out, ASSETS, [VIDEO["mg_dancer"], VIDEO["vtest_tail"]], cfg, show_progress=False)
    return out, stats


def test_default_split_holds_out_the_end_of_vtest_and_never_labels_pose2sim() -> None:
    val = {v.name for v in DEFAULT_VIDEOS if v.split == "val"}
    train = {v.name for v in DEFAULT_VIDEOS if v.split == "train"}
    assert val == {"vtest_tail"} and not val & train
    # pose2sim's Demo_MultiPerson is the validation rig of the multi-view metric: never training data.
    assert not any("pose2sim" in v.name or "pose2sim" in v.file for v in DEFAULT_VIDEOS)
    head, tail = VIDEO["vtest_head"].frame_range, VIDEO["vtest_tail"].frame_range
    assert head[1] == tail[0], "the vtest parts do not overlap"


def test_written_set_reads_back_as_posetrack18(small_set: tuple[Path, list]) -> None:
    out, stats = small_set
    assert [s.name for s in stats] == ["mg_dancer", "vtest_tail"]
    train = read_split(out / "annotations" / "train")
    val = read_split(out / "annotations" / "val")
    assert [v.video_id for v in train] == ["mg_dancer"] and [v.video_id for v in val] == ["vtest_tail"]
    for video, stat, people in zip(train + val, stats, (1, 3)):
        assert video.keypoint_names == KEYPOINT_NAMES, "teacher slots are COCO-17 joints"
        assert video.num_frames == stat.frames == 12
        # The dancer (and several pedestrians) are found in (nearly) every frame and keep their track ids.
        assert len(video.labelled_indices()) >= 11
        ids = [sorted(p.track_id for p in f.persons) for f in video.frames if f.persons]
        assert sum(len(i) >= people for i in ids) >= 10
        assert stat.tracks == len({t for i in ids for t in i})
        for frame in video.frames:
            assert (out / frame.file_name).is_file()
            for person in frame.persons:
                x1, y1, x2, y2 = person.box_xyxy
                assert x2 > x1 and y2 > y1
                assert person.num_labelled >= 1
    assert stats[0].tracks == 1 and stats[0].settings["labeller"] == "thunder"
    split = json.loads((out / "split.json").read_text())
    assert split["train"] == ["mg_dancer"] and split["val"] == ["vtest_tail"]


def test_visibility_follows_teacher_scores(small_set: tuple[Path, list]) -> None:
    out, _ = small_set
    data = json.loads((out / "annotations" / "train" / "mg_dancer.json").read_text())
    assert data["categories"][0]["keypoints"] == list(KEYPOINT_NAMES)
    images = {img["id"]: img for img in data["images"]}
    assert all(img["nframes"] == len(images) and img["vid_id"] == "mg_dancer" for img in images.values())
    assert len(data["annotations"]) > 0
    for ann in data["annotations"]:
        kps = np.asarray(ann["keypoints"]).reshape(17, 3)
        scores = np.asarray(ann["scores"])
        np.testing.assert_array_equal(kps[:, 2], (scores >= 0.3).astype(float))
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and ann["image_id"] in images


def test_set_feeds_the_window_dataset(small_set: tuple[Path, list]) -> None:
    from tdmi_core.data.dataset import PoseTrackWindowDataset, gt_sample_refs

    out, _ = small_set
    videos = read_split(out / "annotations" / "train")
    refs = gt_sample_refs(videos)
    ds = PoseTrackWindowDataset(videos, out, refs, input_size_hw=(256, 192), heatmap_size_hw=(64, 48), delta=2)
    assert len(ds) >= 11
    item = ds[len(ds) // 2]
    frames = item["frames"]
    assert tuple(frames.shape) == (5, 3, 256, 192)
    assert float(item["target_weight"].sum()) >= 8


def test_overlay_renders_a_written_frame(small_set: tuple[Path, list], tmp_path: Path) -> None:
    import cv2

    out, _ = small_set
    path = render_overlay(out, "vtest_tail", 5, tmp_path / "o.jpg", width_px=200)
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] == 200
    with pytest.raises(ValueError, match="frames 0..11"):
        render_overlay(out, "vtest_tail", 99, tmp_path / "x.jpg")
    with pytest.raises(FileNotFoundError, match="build"):
        render_overlay(out, "nope", 0, tmp_path / "x.jpg")


def test_cli_builds_one_part_of_vtest(tmp_path: Path) -> None:
    require_assets("vtest.avi")
    assert main(["build", "--out", str(tmp_path), "--assets", str(ASSETS), "--videos", "vtest_tail",
                 "--max-frames", "8", "--min-track-frames", "2", "--no-progress"]) == 0
    (video,) = read_split(tmp_path / "annotations" / "val")
    assert video.num_frames == 8
    stats = json.loads((tmp_path / "stats.json").read_text())["videos"][0]
    assert stats["settings"]["frame_range"] == [636, 644]
    assert stats["persons"] >= 8 * 2, "several pedestrians per frame at long side 512"
    assert "/" not in json.loads((tmp_path / "stats.json").read_text())["config"]["onnx_path"]


def test_partial_rebuild_keeps_the_other_parts_in_the_split(tmp_path: Path) -> None:
    require_assets("sports2d_demo.mp4", "vtest.avi")
    cfg = TeacherConfig(max_frames=3, min_track_frames=1, labeller="multipose")
    build_dataset(tmp_path, ASSETS, [VIDEO["sports2d_demo"], VIDEO["vtest_tail"]], cfg, show_progress=False)
    build_dataset(tmp_path, ASSETS, [VIDEO["vtest_tail"]], cfg, show_progress=False)
    split = json.loads((tmp_path / "split.json").read_text())
    assert split["train"] == ["sports2d_demo"] and split["val"] == ["vtest_tail"]
    names = [v["name"] for v in json.loads((tmp_path / "stats.json").read_text())["videos"]]
    assert names == ["sports2d_demo", "vtest_tail"]


def test_missing_video_says_how_to_fetch(tmp_path: Path) -> None:
    video = replace(VIDEO["sports2d_demo"], file="absent.mp4")
    with pytest.raises(FileNotFoundError, match="fetch_assets"):
        build_dataset(tmp_path, tmp_path, [video], TeacherConfig(max_frames=2), show_progress=False)


def test_teacher_video_validation() -> None:
    with pytest.raises(ValueError, match="split"):
        TeacherVideo("a", "a.mp4", "test")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="frame_range"):
        TeacherVideo("a", "a.mp4", "train", frame_range=(10, 5))


def test_approx_head_box() -> None:
    kps = np.zeros((17, 3), np.float32)
    assert approx_head_box(kps, 0.3) is None
    for name, xy in {"nose": (100, 50), "left_eye": (105, 45), "right_eye": (95, 45),
                     "left_ear": (112, 48), "right_ear": (88, 48)}.items():
        kps[KEYPOINT_INDEX[name]] = (*xy, 0.9)
    x, y, w, h = approx_head_box(kps, 0.3)
    assert w == h == pytest.approx(1.6 * 24)
    face = kps[:5, :2]
    assert np.all((face[:, 0] > x) & (face[:, 0] < x + w) & (face[:, 1] > y) & (face[:, 1] < y + h))
    kps[KEYPOINT_INDEX["left_ear"], 2] = kps[KEYPOINT_INDEX["right_ear"], 2] = 0.1
    kps[KEYPOINT_INDEX["left_eye"], 2] = kps[KEYPOINT_INDEX["right_eye"], 2] = 0.1
    assert approx_head_box(kps, 0.3) is None, "one face joint is not enough"


def test_smooth_track_damps_an_outlier_and_keeps_a_fast_limb_fast() -> None:
    t = np.arange(21.0)
    kps = np.zeros((21, 17, 3))
    kps[:, :, 0] = 100 + 0.5 * t[:, None] ** 2  # accelerating joint (fast limb)
    kps[:, :, 1] = 200.0
    kps[:, :, 2] = 0.9
    kps[10, 3, :2] = (400.0, 600.0)  # one wild joint in one frame
    out = smooth_track(t, kps, np.full(21, 300.0), sigma_frames=1.0, outlier_fraction=0.2)
    assert out[10, 3, 2] == pytest.approx(0.9 * 0.25) and out[10, 3, 2] < TeacherConfig().keypoint_threshold  # unlabelled
    assert abs(out[10, 3, 1] - 200.0) < 0.5 * 400  # pulled toward the track
    assert abs(out[9, 3, 1] - 200.0) < 40 and abs(out[11, 3, 1] - 200.0) < 40  # its labelled neighbours move little
    # a quadratic trajectory is reproduced, not flattened: no lag on the accelerating joint
    np.testing.assert_allclose(out[3:-3, 0, 0], kps[3:-3, 0, 0], atol=1e-6)
    # sigma below half a frame: positions untouched
    raw = smooth_track(t, kps, np.full(21, 300.0), sigma_frames=0.3)
    np.testing.assert_array_equal(raw[:, 0, :2], kps[:, 0, :2])
