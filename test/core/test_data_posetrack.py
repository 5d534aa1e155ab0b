"""PoseTrack readers (2017 annolist, 2018, 21), DCPose detection files, and their error messages."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tdmi_core.data.detections import read_detections
from tdmi_core.data.posetrack import (
    AnnotationError,
    detect_format,
    keypoint_box,
    read_posetrack17,
    read_posetrack18,
    read_split,
)
from tdmi_core.skeleton import KEYPOINT_NAMES, POSETRACK_KEYPOINT_NAMES

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "posetrack_train"
PT18_TRAIN = FIXTURES / "posetrack18" / "train" / "000001_synth_train.json"
PT21_TRAIN = FIXTURES / "posetrack21" / "train" / "000001_synth_train.json"
PT17_TRAIN = FIXTURES / "posetrack17" / "train" / "000002_synth.json"
DETECTIONS = FIXTURES / "detections" / "val_boxes.json"


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _write(tmp_path: Path, data, name: str = "video.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_detect_format_on_fixtures() -> None:
    assert detect_format(PT17_TRAIN) == "posetrack17"
    assert detect_format(PT18_TRAIN) == "posetrack18"
    assert detect_format(PT21_TRAIN) == "posetrack21"


def test_posetrack18_reader_matches_the_json() -> None:
    video = read_posetrack18(PT18_TRAIN)
    raw = _load(PT18_TRAIN)
    assert video.video_id == "000001" and video.num_frames == 8
    assert [f.file_name for f in video.frames] == [f"images/train/000001_synth_train/{t:06d}.jpg" for t in range(8)]
    assert video.labelled_indices() == [1, 2, 3, 4, 5, 6]
    ann = raw["annotations"][0]
    frame = video.frames[video.labelled_indices()[0]]
    person = next(p for p in frame.persons if p.track_id == ann["track_id"])
    expected = np.asarray(ann["keypoints"], np.float32).reshape(17, 3)
    np.testing.assert_allclose(person.keypoints[:, :2], expected[:, :2])
    np.testing.assert_array_equal(person.keypoints[:, 2], (expected[:, 2] > 0).astype(np.float32))
    x, y, w, h = ann["bbox"]
    np.testing.assert_allclose(person.box_xyxy, [x, y, x + w, y + h], rtol=1e-6)
    assert video.keypoint_names == POSETRACK_KEYPOINT_NAMES
    # ears are unlabelled in PoseTrack
    assert person.keypoints[3, 2] == 0 and person.keypoints[4, 2] == 0


def test_posetrack21_reader_keeps_occluded_joints_and_skips_box_only_persons() -> None:
    video = read_posetrack18(PT21_TRAIN, "posetrack21")
    frame = video.frames[2]
    assert len(frame.persons) == 2  # the box-only person (no keypoints) gives no target
    raw = _load(PT21_TRAIN)
    ann = next(a for a in raw["annotations"] if a["image_id"] == frame.image_id and a["track_id"] == 0)
    assert ann["keypoints"][9 * 3 + 2] == 0 and ann["keypoints"][9 * 3] != 0  # flag 0, coordinates kept
    person = next(p for p in frame.persons if p.track_id == 0)
    assert person.keypoints[9, 2] == 1  # occluded but labelled
    assert len(frame.ignore_regions) == 1 and frame.ignore_regions[0].shape == (4, 2)
    # the PoseTrack18 rule (flag alone) drops it
    as18 = read_posetrack18(PT21_TRAIN, "posetrack18")
    assert next(p for p in as18.frames[2].persons if p.track_id == 0).keypoints[9, 2] == 0


def test_posetrack17_reader_maps_joint_ids_and_lists_unlabelled_frames() -> None:
    video = read_posetrack17(PT17_TRAIN, FIXTURES)
    assert video.num_frames == 8  # from the image directory, not the 4 listed frames
    assert video.labelled_indices() == [2, 3, 4, 5]
    assert video.frames[0].file_name == "images/pt17/000002_synth/00000001.jpg"
    raw = _load(PT17_TRAIN)
    entry = raw["annolist"][0]
    assert entry["image"][0]["name"] == video.frames[2].file_name
    rect = entry["annorect"][0]
    person = next(p for p in video.frames[2].persons if p.track_id == rect["track_id"][0])
    points = {pt["id"][0]: (pt["x"][0], pt["y"][0]) for pt in rect["annopoints"][0]["point"]}
    # poseval ids: 0 right_ankle, 12 head_bottom, 13 nose, 14 head_top
    for joint_id, name in ((0, "right_ankle"), (12, "head_bottom"), (13, "nose"), (14, "head_top"), (9, "left_shoulder")):
        slot = POSETRACK_KEYPOINT_NAMES.index(name)
        np.testing.assert_allclose(person.keypoints[slot, :2], points[joint_id])
        assert person.keypoints[slot, 2] == 1
    # the second person has no left ankle point: unlabelled
    other = next(p for p in video.frames[2].persons if p.track_id == 1)
    assert other.keypoints[POSETRACK_KEYPOINT_NAMES.index("left_ankle"), 2] == 0
    # person box = poseval's: keypoint extent x 1.3 around its centre
    labelled = person.keypoints[person.keypoints[:, 2] > 0, :2]
    extent = labelled.max(0) - labelled.min(0)
    np.testing.assert_allclose(person.box_xyxy[2:] - person.box_xyxy[:2], 1.3 * extent, rtol=1e-5)


def test_read_split_all_formats() -> None:
    assert len(read_split(FIXTURES / "posetrack18" / "train")) == 1
    assert read_split(FIXTURES / "posetrack21" / "train")[0].fmt == "posetrack21"
    assert read_split(FIXTURES / "posetrack17" / "train", FIXTURES)[0].fmt == "posetrack17"
    with pytest.raises(AnnotationError, match="no \\*.json"):
        read_split(FIXTURES / "images")


def test_teacher_style_coco_names_accepted(tmp_path: Path) -> None:
    data = _load(PT18_TRAIN)
    data["categories"][0]["keypoints"] = list(KEYPOINT_NAMES)
    video = read_posetrack18(_write(tmp_path, data))
    assert video.keypoint_names == KEYPOINT_NAMES


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["annotations"][3].update(image_id=123), r"annotations\[3\]: image_id 123 is not in 'images'"),
        (lambda d: d["annotations"][1].update(keypoints=[1.0] * 50), r"annotations\[1\]: 'keypoints' must hold 51"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, -3, 4]), r"annotations\[0\]\.bbox: box .* negative"),
        (lambda d: d["annotations"][0]["keypoints"].__setitem__(0, "abc"), r"annotations\[0\]\.keypoints: expected a number"),
        (lambda d: d["annotations"][1].update(track_id=0, image_id=d["annotations"][0]["image_id"]), r"track_id 0 appears twice"),
        (lambda d: d["images"][2].update(id=d["images"][1]["id"]), r"images\[2\]: duplicate image id"),
        (lambda d: d["images"][0].update(nframes=99), r"images disagree on 'nframes'"),
        (lambda d: d["images"].pop(), r"'nframes' says 8 frames but 'images' lists 7"),
        (lambda d: d["categories"][0].update(keypoints=["a"] * 17), r"match neither the PoseTrack"),
        (lambda d: d.pop("categories"), r"missing required key 'categories'"),
        (lambda d: d["images"][0].pop("file_name"), r"images\[0\]: missing required key 'file_name'"),
        (lambda d: d["images"][3].update(vid_id="999"), r"several videos"),
    ],
)
def test_posetrack18_errors_name_file_and_entry(tmp_path: Path, mutate, message: str) -> None:
    data = _load(PT18_TRAIN)
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(AnnotationError, match=message) as info:
        read_posetrack18(path)
    assert str(path) in str(info.value)


def test_posetrack17_errors(tmp_path: Path) -> None:
    data = _load(PT17_TRAIN)
    data["annolist"][1]["annorect"][0]["annopoints"][0]["point"][2]["id"] = [15]
    with pytest.raises(AnnotationError, match=r"annolist\[1\]\.annorect\[0\]\.annopoints\[0\]\.point\[2\]: joint id 15"):
        read_posetrack17(_write(tmp_path, data), FIXTURES)
    data = _load(PT17_TRAIN)
    data["annolist"][0]["annorect"][0]["annopoints"][0]["point"][0]["x"] = [1.0, 2.0]
    with pytest.raises(AnnotationError, match="one-element list"):
        read_posetrack17(_write(tmp_path, data), FIXTURES)
    with pytest.raises(AnnotationError, match="frame directory .* not found"):
        read_posetrack17(PT17_TRAIN, tmp_path)
    # a labelled image missing on disk
    shutil.copytree(FIXTURES / "images" / "pt17", tmp_path / "images" / "pt17")
    (tmp_path / "images/pt17/000002_synth/00000004.jpg").unlink()
    with pytest.raises(AnnotationError, match="00000004.jpg' not found"):
        read_posetrack17(PT17_TRAIN, tmp_path)


def test_broken_json_names_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(AnnotationError, match="broken.json: not valid json"):
        read_posetrack18(path)


def test_keypoint_box_none_without_labels() -> None:
    assert keypoint_box(np.zeros((17, 3), np.float32)) is None


def test_detections_reader(tmp_path: Path) -> None:
    raw = _load(DETECTIONS)
    dets = read_detections(DETECTIONS)
    assert sum(len(d) for d in dets.values()) == len(raw)
    first = raw[0]
    d = dets[first["image_name"]]
    x, y, w, h = first["bbox"]
    np.testing.assert_allclose(d.boxes_xyxy[0], [x, y, x + w, y + h], rtol=1e-6)
    assert d.scores[0] == pytest.approx(first["score"])
    kept = read_detections(DETECTIONS, score_threshold=0.5)
    assert sum(len(d) for d in kept.values()) == sum(1 for r in raw if r["score"] >= 0.5)
    bad = [dict(raw[0]), {"image_name": "x.jpg", "bbox": [0, 0, 1], "score": 1.0}]
    with pytest.raises(AnnotationError, match=r"entry 1: bbox must be"):
        read_detections(_write(tmp_path, bad, "dets.json"))
    with pytest.raises(AnnotationError, match=r"entry 0: missing required key 'score'"):
        read_detections(_write(tmp_path, [{"image_name": "x.jpg", "bbox": [0, 0, 1, 1]}], "dets.json"))
