"""Readers (as poseval / the PoseTrack21 kit read files) and the PoseTrack18 prediction writer."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from tdmi_core.eval.formats import (
    PosePrediction,
    PoseTrackFormatError,
    posetrack18_to_annolist,
    read_annolist,
    read_posetrack21,
    read_poseval_frames,
    write_posetrack18_predictions,
)
from tdmi_core.eval.posetrack import evaluate_dirs
from tdmi_core.skeleton import POSETRACK_EVAL_JOINTS, POSETRACK_KEYPOINT_NAMES, POSETRACK_SLOT_TO_EVAL_JOINT

DATA = Path(__file__).resolve().parents[1] / "data" / "posetrack"
EJ = POSETRACK_EVAL_JOINTS.index


def _pt18(keypoints: list[list[float]], names=POSETRACK_KEYPOINT_NAMES, **ann_extra) -> dict:
    """One image, one person; keypoints as 17 (x, y, v) rows in the order of ``names``."""
    ann = {"image_id": 7, "track_id": 0, "keypoints": [v for row in keypoints for v in row], **ann_extra}
    return {
        "images": [{"id": 7, "file_name": "images/val/000001_bonn_test/000000.jpg", "is_labeled": True,
                    "ignore_regions_x": [], "ignore_regions_y": []}],
        "annotations": [ann],
        "categories": [{"name": "person", "keypoints": list(names)}],
    }


def _rows(fill=(1.0, 2.0, 1)) -> list[list[float]]:
    return [[fill[0] + s, fill[1] + s, fill[2]] for s in range(17)]


def test_skeleton_slot_map_is_poseval_order() -> None:
    # PoseTrack slot 1 (head_bottom) is poseval joint 12 ("neck"), slot 0 nose 13, slot 2 head_top 14, ears none
    assert POSETRACK_SLOT_TO_EVAL_JOINT[:5] == (13, 12, 14, None, None)
    assert POSETRACK_SLOT_TO_EVAL_JOINT[16] == 0  # right_ankle is poseval joint 0
    assert len(POSETRACK_EVAL_JOINTS) == 15


def test_posetrack18_conversion_rules() -> None:
    rows = _rows()
    rows[5] = [0, 0, 0]      # left_shoulder unannotated: dropped
    rows[6] = [5.0, 6.0, 0]  # right_shoulder with v = 0 but a position: poseval KEEPS it
    rows[7] = [0, 0, 1]      # left_elbow at the origin but v = 1: kept
    data = _pt18(rows, bbox_head=[10, 20, 30, 40], scores=[0.5] * 17)
    (frame,) = posetrack18_to_annolist(data, "seq.json")
    (rect,) = frame.rects
    ids = [p.joint_id for p in rect.points]
    assert EJ("left_shoulder") not in ids and EJ("right_shoulder") in ids and EJ("left_elbow") in ids
    assert len(ids) == 17 - 2 - 1  # ears never read, one unannotated
    assert rect.head_box_xyxy == (10, 20, 40, 60)
    nose = next(p for p in rect.points if p.joint_id == EJ("nose"))
    assert (nose.x, nose.y, nose.score) == (1.0, 2.0, 0.5)


def test_posetrack18_maps_slots_by_category_names() -> None:
    # a file whose category lists the keypoints in another order is read by name, as poseval's conversion table does
    names = list(POSETRACK_KEYPOINT_NAMES)[::-1]
    rows = _rows()
    (frame,) = posetrack18_to_annolist(_pt18(rows, names=names), "seq.json")
    first = next(p for p in frame.rects[0].points if p.joint_id == EJ(names[0]))
    assert (first.x, first.y) == (1.0, 2.0)


def test_posetrack18_missing_or_empty_scores_mean_no_scores() -> None:
    for extra in ({}, {"scores": []}):
        (frame,) = posetrack18_to_annolist(_pt18(_rows(), **extra), "seq.json")
        assert all(p.score is None for p in frame.rects[0].points)


def test_posetrack18_only_first_sequence_folder(caplog: pytest.LogCaptureFixture) -> None:
    data = _pt18(_rows())
    data["images"].append({"id": 8, "file_name": "images/val/000002_bonn_test/000000.jpg"})
    with caplog.at_level(logging.WARNING):
        frames = posetrack18_to_annolist(data, "seq.json")
    assert len(frames) == 1 and "only the first" in caplog.text


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["annotations"][0].pop("track_id"), r"seq\.json: annotations\[0\]: person without 'track_id'"),
        (lambda d: d["annotations"][0]["keypoints"].pop(), r"annotations\[0\]\.keypoints: 50 values"),
        (lambda d: d["annotations"][0].__setitem__("scores", [0.1] * 5), r"annotations\[0\]\.scores: 5 scores"),
        (lambda d: d["categories"][0]["keypoints"].__setitem__(0, "snout"), r"no slot named \['nose'\]"),
        (lambda d: d["categories"][0]["keypoints"].remove("nose"), r"16 keypoint names"),
        (lambda d: d["annotations"][0]["keypoints"].__setitem__(3, None), r"keypoints\[3\]: expected a number"),
    ],
)
def test_posetrack18_errors_name_file_and_entry(mutate, message: str) -> None:
    data = _pt18(_rows())
    mutate(data)
    with pytest.raises(PoseTrackFormatError, match=message):
        posetrack18_to_annolist(data, "seq.json")


def test_annolist_reader() -> None:
    data = {"annolist": [
        {"image": [{"name": "a/00000001.jpg"}], "annorect": [
            {"x1": [0], "y1": [0], "x2": [30], "y2": [40], "track_id": [3],
             "annopoints": [{"point": [{"id": [13], "x": [5.5], "y": [6.5], "score": [0.7]},
                                       {"id": [0], "x": [1], "y": [2]}]}]},
            {"track_id": [4], "annopoints": []},
        ], "ignore_regions": [{"point": [{"x": [0], "y": [0]}, {"x": [9], "y": [0]}, {"x": [9], "y": [9]}]}]},
    ]}
    (frame,) = read_annolist(data, "s.json")
    rect, empty = frame.rects
    assert rect.head_box_xyxy == (0.0, 0.0, 30.0, 40.0) and rect.track_id == 3
    assert [(p.joint_id, p.x, p.y, p.score) for p in rect.points] == [(13, 5.5, 6.5, 0.7), (0, 1, 2, None)]
    assert empty.points is None  # poseval drops this person (rectHasPoints is false)
    assert frame.ignore_regions[0].shape == (3, 2)
    bad = {"annolist": [{"annorect": [{"annopoints": [{"point": [{"id": 13, "x": [1], "y": [1]}]}]}]}]}
    where = r"annolist\[0\]\.annorect\[0\]\.annopoints\[0\]\.point\[0\]\.id"
    with pytest.raises(PoseTrackFormatError, match=where + ": expected a one-element list"):
        read_annolist(bad, "s.json")


def test_posetrack21_reader_slots_scores_and_int_quirk() -> None:
    rows = _rows()
    gt = read_posetrack21(_pt18(rows, bbox_head=[0, 0, 30, 40]), "gt.json", is_gt=True)
    assert gt[0].keypoints.shape == (1, 15, 3) and gt[0].head_sizes.tolist() == [30.0]
    assert gt[0].keypoints[0, 3, :2].tolist() == [6.0, 7.0]  # PT21 joint 3 = slot 5 (left_shoulder): ears deleted
    # prediction without scores: every joint -9999
    pr = read_posetrack21(_pt18(rows), "pred.json", is_gt=False)
    assert np.all(pr[0].keypoints[0, :, 2] == -9999)
    # all-integer keypoints: the kit's numpy array is integer, so scores 0.87 / 1.6 become 0 / 1
    int_rows = [[10 + s, 20 + s, 1] for s in range(17)]
    pr_int = read_posetrack21(_pt18(int_rows, scores=[0.87] * 16 + [1.6]), "pred.json", is_gt=False)
    assert pr_int[0].keypoints[0, :, 2].tolist() == [0.0] * 14 + [1.0]
    float_rows = [[10.0 + s, 20 + s, 1] for s in range(17)]
    pr_float = read_posetrack21(_pt18(float_rows, scores=[0.87] * 17), "pred.json", is_gt=False)
    assert np.allclose(pr_float[0].keypoints[0, :, 2], 0.87)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["annotations"][0].pop("bbox_head"), r"GT person without 'bbox_head'"),
        (lambda d: d["images"][0].pop("is_labeled"), r"images\[0\]: GT image without 'is_labeled'"),
        (lambda d: d["annotations"][0].__setitem__("image_id", 99), r"image_id 99 is not an image of this file"),
    ],
)
def test_posetrack21_gt_errors(mutate, message: str) -> None:
    data = _pt18(_rows(), bbox_head=[0, 0, 30, 40])
    mutate(data)
    with pytest.raises(PoseTrackFormatError, match=message):
        read_posetrack21(data, "gt.json", is_gt=True)


def test_fixture_files_read_in_every_format() -> None:
    pt17 = read_poseval_frames(DATA / "pt17" / "gt" / "000001_bonn_test.json")
    pt18 = read_poseval_frames(DATA / "pt18" / "gt" / "000001_bonn_test.json")
    assert len(pt17) == len(pt18) == 4
    assert [len(f.rects) for f in pt17] == [len(f.rects) for f in pt18] == [2, 0, 1, 1]


def _gt_images(path: Path) -> list[dict]:
    return json.loads(path.read_text())["images"]


def test_writer_round_trip_scores_100(tmp_path: Path) -> None:
    # write the GT poses back as predictions with the official writer: every annotated joint is a hit
    for kit, folder in (("posetrack18", "pt18"), ("posetrack21", "pt21")):
        pred_dir = tmp_path / kit
        for gt_file in sorted((DATA / folder / "gt").glob("*.json")):
            gt = json.loads(gt_file.read_text())
            preds = []
            counts: dict[int, int] = {}
            for ann in gt["annotations"]:
                kp = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
                if not kp[:, :2].any():
                    continue
                kp[:, 2] = np.where(kp[:, 0] > 0, 0.9, 0.0)
                tid = counts.setdefault(ann["image_id"], 0)
                counts[ann["image_id"]] += 1
                preds.append(PosePrediction(ann["image_id"], kp, 0.9, tid))
            write_posetrack18_predictions(pred_dir / gt_file.name, gt["images"], preds)
        written = json.loads((pred_dir / "000001_bonn_test.json").read_text())
        assert written["categories"][0]["keypoints"] == list(POSETRACK_KEYPOINT_NAMES)
        assert all(isinstance(v, float) for a in written["annotations"] for v in a["keypoints"])
        result = evaluate_dirs(DATA / folder / "gt", pred_dir, kit)
        annotated = [n for n, c in result.num_gt_joints.items() if c > 0]
        assert all(result.per_joint[n] == 100.0 for n in annotated)


def test_writer_rejects_bad_predictions(tmp_path: Path) -> None:
    images = [{"id": 1, "file_name": "x/000000.jpg"}]
    kp = np.ones((17, 3))
    with pytest.raises(ValueError, match="track_id 0 twice"):
        write_posetrack18_predictions(tmp_path / "a.json", images, [PosePrediction(1, kp, 1.0, 0)] * 2)
    with pytest.raises(ValueError, match=r"shape \(15, 3\)"):
        write_posetrack18_predictions(tmp_path / "a.json", images, [PosePrediction(1, np.ones((15, 3)), 1.0, 0)])
    with pytest.raises(ValueError, match="not one of the given images"):
        write_posetrack18_predictions(tmp_path / "a.json", images, [PosePrediction(2, kp, 1.0, 0)])
    with pytest.raises(ValueError, match=r"\[0, 10000\)"):
        write_posetrack18_predictions(tmp_path / "a.json", images, [PosePrediction(1, kp, 1.0, 10000)])
