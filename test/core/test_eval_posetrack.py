"""End-to-end PoseTrack mAP on the hand-written fixtures (test/data/posetrack), worked by hand and checked
against golden numbers printed by the official code (poseval @4258a15 and PoseTrack21's eval kit @3e61960,
run outside this repository with numpy 1.23.5 / shapely 2.0.7).

The fixture (same poses in every format; pt17 = PoseTrack17 annolist, pt18 = PoseTrack18 json, pt21 =
PoseTrack21 json with is_labeled / ignore_regions on every image). Head boxes are 30 x 40 px, so the
head size is 0.6 * 50 = 30 px and a hit needs a distance <= 15 px. GT persons have 13 joints (no nose,
no head_top annotated). Per-joint scores (the person "score" fields are deliberately inverse: unused):

seq 000001_bonn_test
  frame 0: GT A, B (B = A + 10 px, except wrists and head_bottom 100 px away).
           P1 = A (+ a head_top), joint score 0.9; P2 = A - 6 px without left_wrist (+ head_top), 0.95;
           P3 far away, 0.3. PCKh: P1 A 1.0 / B 10/13; P2 A 12/13 / B 0 -> both keep A, A takes P1, B takes
           none: P1 all hits, P2 all false positives (a Hungarian matching would pair P1-B, P2-A).
  frame 1: no GT person (is_labeled false); P4 with score 0.99 -> frame skipped, P4 ignored.
  frame 2: GT C; ignore region [250,350]x[280,360] covers C's knees and ankles (C keeps 9 joints).
           P5 = C, 0.8 -> its knees/ankles removed, 9 hits. P6 has 12 joints inside the region (removed)
           and right_hip exactly on the region's edge (kept, not "contained"): one false positive, 0.85.
  frame 3: GT D without any keypoint (box only): frame evaluated; P7 (0.5) all false positives.
seq 000002_mpii_test
  frame 0: GT E, F. P8 = E except right_ankle +(9,12) = 15 px (hit, on the threshold) and left_ankle
           +(12,16) = 20 px (miss), 0.7, plus a left_ear at 0.99 (never scored). P9 = F without scores
           (-9999: ranked last), all hits.
  frame 1: GT G, no prediction (13 misses).

GT counts: knees/ankles 2+2+1 = 5 (A, B, E, F, G), other 9 joints 6 (+C); nose, head_top 0.
Ranked detections -> AP (VOC, all points):
  r_ankle, r_knee, l_knee: .95x .9o .7o .5x .3x -9999o, nGT 5 -> 11/30          = 36.667
  l_ankle:                 .95x .9o .7x .5x .3x -9999o, nGT 5 -> .2*.5+.2*(1/3) = 16.667
  l_hip, r_wrist, r_elbow, r_shoulder, l_shoulder, l_elbow, head_bottom:
                           .95x .9o .8o .7o .5x .3x -9999o, nGT 6 -> 3/6*3/4 + 1/6*4/7 = 79/168 = 47.024
  r_hip (P6's edge point): .95x .9o .85x .8o .7o .5x .3x -9999o, nGT 6 -> 3/6*.6 + 1/6*.5 = 23/60 = 38.333
  l_wrist (P2 lacks it):   .9o .8o .7o .5x .3x -9999o, nGT 6 -> 3/6*1 + 1/6*2/3 = 11/18 = 61.111
  nose: no GT, no detection -> 0 in both kits (counted in the total)
  head_top: no GT, detections -> poseval NaN (left out of the total), PoseTrack21 0 (counted)
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tdmi_core.eval.formats import PoseTrackFormatError
from tdmi_core.eval.posetrack import evaluate_dirs, format_table, main
from tdmi_core.skeleton import POSETRACK_EVAL_JOINTS

DATA = Path(__file__).resolve().parents[1] / "data" / "posetrack"
REPO = Path(__file__).resolve().parents[2]

KNEE_ANKLE = 11 / 30 * 100
OTHER = 79 / 168 * 100
HAND = {
    "right_ankle": KNEE_ANKLE, "right_knee": KNEE_ANKLE, "right_hip": 23 / 60 * 100, "left_hip": OTHER,
    "left_knee": KNEE_ANKLE, "left_ankle": 100 / 6, "right_wrist": OTHER, "right_elbow": OTHER,
    "right_shoulder": OTHER, "left_shoulder": OTHER, "left_elbow": OTHER, "left_wrist": 11 / 18 * 100,
    "head_bottom": OTHER, "nose": 0.0,
}
HAND_SUM = sum(HAND.values())

# Official outputs, poseval joint order then the total (poseval apAll / PoseTrack21 ap_all reordered).
GOLDEN_POSEVAL = [
    36.666666666666664, 36.666666666666664, 38.33333333333333, 47.023809523809526, 36.666666666666664,
    16.666666666666668, 47.023809523809526, 47.023809523809526, 47.023809523809526, 47.023809523809526,
    47.023809523809526, 61.11111111111111, 47.023809523809526, 0.0, None, 39.66269841269841,
]
GOLDEN_POSEVAL_GROUPS = [None, 47.023809523809526, 47.023809523809526, 54.067460317460316, 42.67857142857143,
                         36.666666666666664, 26.666666666666664, 39.66269841269841]
GOLDEN_PT21 = GOLDEN_POSEVAL[:14] + [0.0, 37.01851851851851]
GOLDEN_PT21_GROUPS = [15.674603174603176] + GOLDEN_POSEVAL_GROUPS[1:7] + [37.01851851851851]
# the pt21 files under poseval: the unlabelled frame's box-only GT person makes poseval evaluate that frame,
# so P4's 0.99 joints become top-ranked false positives
GOLDEN_POSEVAL_ON_PT21 = [
    28.57142857142857, 28.57142857142857, 32.407407407407405, 38.33333333333333, 28.57142857142857,
    12.380952380952381, 38.33333333333333, 38.33333333333333, 38.33333333333333, 38.33333333333333,
    38.33333333333333, 47.023809523809526, 38.33333333333333, 0.0, None, 31.847127739984874,
]
# pt18_noscores: predictions without scores, every detection ties at -9999; poseval (numpy 1.23.5)
GOLDEN_NOSCORES = [42.5, 50.74404761904761] * 6 + [42.5, 0.0, 0.0, 40.13095238095238]


def _as_list(result) -> list:
    values = [result.per_joint[n] for n in POSETRACK_EVAL_JOINTS] + [result.total]
    return [None if math.isnan(v) else v for v in values]


def _groups(result) -> list:
    values = list(result.groups.values()) + [result.total]
    return [None if math.isnan(v) else v for v in values]


@pytest.mark.parametrize("folder", ["pt17", "pt18"])
def test_poseval_kit_worked_values_and_golden(folder: str) -> None:
    result = evaluate_dirs(DATA / folder / "gt", DATA / folder / "pred", "posetrack18")
    for name, value in HAND.items():
        assert result.per_joint[name] == pytest.approx(value, abs=1e-9), name
    assert math.isnan(result.per_joint["head_top"])
    assert result.total == pytest.approx(HAND_SUM / 14, abs=1e-9)  # head_top (NaN) left out, nose (0) in
    assert math.isnan(result.groups["Head"])  # getCum propagates the NaN
    assert _as_list(result) == GOLDEN_POSEVAL  # bit-exact with the official code
    assert _groups(result) == GOLDEN_POSEVAL_GROUPS
    assert result.num_frames == 5  # the frame without GT persons is skipped
    assert result.num_gt_joints["right_ankle"] == 5 and result.num_gt_joints["right_hip"] == 6


def test_posetrack21_kit_worked_values_and_golden() -> None:
    result = evaluate_dirs(DATA / "pt21" / "gt", DATA / "pt21" / "pred", "posetrack21")
    for name, value in HAND.items():
        assert result.per_joint[name] == pytest.approx(value, abs=1e-9), name
    assert result.per_joint["head_top"] == 0.0
    assert result.total == pytest.approx(HAND_SUM / 15, abs=1e-9)  # all 15 joints averaged
    assert result.groups["Head"] == pytest.approx((OTHER + 0 + 0) / 3, abs=1e-9)
    assert _as_list(result) == GOLDEN_PT21
    assert _groups(result) == GOLDEN_PT21_GROUPS
    assert result.num_frames == 5  # is_labeled false -> skipped


def test_unlabelled_frame_with_box_only_gt_is_evaluated_by_poseval() -> None:
    # poseval skips a frame only when its GT has no person at all; is_labeled is not read
    result = evaluate_dirs(DATA / "pt21" / "gt", DATA / "pt21" / "pred", "posetrack18")
    assert result.num_frames == 6
    assert _as_list(result) == GOLDEN_POSEVAL_ON_PT21


def test_ties_follow_the_official_order() -> None:
    result = evaluate_dirs(DATA / "pt18_noscores" / "gt", DATA / "pt18_noscores" / "pred")
    assert _as_list(result) == GOLDEN_NOSCORES


def _copy(tmp_path: Path, folder: str) -> tuple[Path, Path]:
    dst = tmp_path / folder
    shutil.copytree(DATA / folder, dst)
    return dst / "gt", dst / "pred"


def _edit(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def test_person_scores_do_not_rank(tmp_path: Path) -> None:
    gt, pred = _copy(tmp_path, "pt18")

    def flip(data: dict) -> None:
        for ann in data["annotations"]:
            ann["score"] = 1.0 - ann["score"]

    for f in pred.glob("*.json"):
        _edit(f, flip)
    assert _as_list(evaluate_dirs(gt, pred)) == GOLDEN_POSEVAL


def test_skipped_frame_predictions_do_not_count(tmp_path: Path) -> None:
    gt, pred = _copy(tmp_path, "pt18")
    _edit(pred / "000001_bonn_test.json",
          lambda d: d.__setitem__("annotations", [a for a in d["annotations"] if a["image_id"] != 10001]))
    assert _as_list(evaluate_dirs(gt, pred)) == GOLDEN_POSEVAL


def test_ignore_region_matters(tmp_path: Path) -> None:
    # without the region, C's knees/ankles count again (nGT 6) and P6's 12 inside joints become false positives
    gt, pred = _copy(tmp_path, "pt18")

    def drop(data: dict) -> None:
        for image in data["images"]:
            image.pop("ignore_regions_x", None)
            image.pop("ignore_regions_y", None)

    _edit(gt / "000001_bonn_test.json", drop)
    result = evaluate_dirs(gt, pred)
    assert result.num_gt_joints["right_ankle"] == 6
    assert result.per_joint["left_hip"] < OTHER - 1


def test_frame_count_and_name_mismatch_are_errors(tmp_path: Path) -> None:
    gt, pred = _copy(tmp_path, "pt18")
    _edit(pred / "000002_mpii_test.json", lambda d: d["images"].reverse())
    with pytest.raises(PoseTrackFormatError, match="pairs frames by position"):
        evaluate_dirs(gt, pred)
    _edit(pred / "000002_mpii_test.json", lambda d: d["images"].pop())
    with pytest.raises(PoseTrackFormatError, match="1 prediction frames for 2 GT frames"):
        evaluate_dirs(gt, pred)


def test_duplicate_prediction_track_ids_are_rejected(tmp_path: Path) -> None:
    gt, pred = _copy(tmp_path, "pt18")

    def same_ids(data: dict) -> None:
        for ann in data["annotations"]:
            ann["track_id"] = 0

    _edit(pred / "000002_mpii_test.json", same_ids)
    with pytest.raises(PoseTrackFormatError, match="track_id twice"):
        evaluate_dirs(gt, pred)


def test_table_lists_groups_and_joints() -> None:
    table = format_table(evaluate_dirs(DATA / "pt18" / "gt", DATA / "pt18" / "pred"))
    assert "Head  Shou   Elb   Wri   Hip  Knee  Ankl Total" in table
    assert "  nan  47.0  47.0  54.1  42.7  36.7  26.7  39.7" in table
    assert "head_bottom" in table and "right_ankle" in table


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tdmi_core.eval.posetrack", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(("folder", "kit", "golden"), [
    ("pt17", "posetrack18", GOLDEN_POSEVAL), ("pt21", "posetrack21", GOLDEN_PT21),
])
def test_cli_json(folder: str, kit: str, golden: list) -> None:
    out = _cli("--gt", str(DATA / folder / "gt"), "--pred", str(DATA / folder / "pred"), "--kit", kit, "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["mAP"] == golden[-1]
    assert list(payload["per_joint"]) == list(POSETRACK_EVAL_JOINTS)
    assert [payload["per_joint"][n] for n in POSETRACK_EVAL_JOINTS] == golden[:15]  # NaN written as null


def test_cli_table_and_errors(tmp_path: Path) -> None:
    out = _cli("--gt", str(DATA / "pt18" / "gt"), "--pred", str(DATA / "pt18" / "pred"))
    assert out.returncode == 0 and "Total" in out.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    out = _cli("--gt", str(DATA / "pt18" / "gt"), "--pred", str(empty), "--json")
    assert out.returncode == 2 and "no prediction file of the same name" in out.stderr
    out = _cli("--gt", str(DATA / "pt17" / "gt"), "--pred", str(DATA / "pt17" / "pred"), "--kit", "posetrack21")
    assert out.returncode == 2 and "reads only PoseTrack18-style json" in out.stderr


def test_main_in_process(capsys: pytest.CaptureFixture) -> None:
    assert main(["--gt", str(DATA / "pt18" / "gt"), "--pred", str(DATA / "pt18" / "pred"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mAP"] == GOLDEN_POSEVAL[-1]
