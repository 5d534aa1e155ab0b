"""MoveNet MultiPose (ONNX Runtime) and HOG person detectors on real frames of the fetched videos."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from tdmi_core.detection import (
    DEFAULT_MOVENET_ONNX,
    Detections,
    HogPersonDetector,
    MoveNetConfig,
    MoveNetDetector,
    decode_movenet,
    letterbox,
    merge_detections,
)
from tdmi_core.skeleton import KEYPOINT_INDEX

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "videos"
MOVENET_SHA256 = "f46ee72be21a113a111d5b030777c2690a29834428f2dcfaf6961543fb8e1118"  # weights/README.md


def read_frame(name: str, index: int) -> np.ndarray:
    path = ASSETS / name
    if not path.is_file():
        pytest.skip(f"{path} absent: run `python scripts/fetch_assets.py` (make setup does)")
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    cap.release()
    assert ok, f"cannot decode frame {index} of {path}"
    return frame


@pytest.fixture(scope="module")
def movenet() -> MoveNetDetector:
    return MoveNetDetector(num_threads=1)


@pytest.fixture(scope="module")
def lab_frame() -> np.ndarray:
    return read_frame("pose2sim_cam01.mp4", 30)  # two performers, portrait 1088x1920


def _first(dets: Detections, n: int) -> Detections:
    return Detections(dets.boxes_xyxy[:n], dets.scores[:n], dets.keypoints[:n])


def _match(a: Detections, b: Detections) -> np.ndarray:
    """For each box of a, the smallest max-abs-difference to a box of b (pixels)."""
    return np.array([np.abs(b.boxes_xyxy - box).max(axis=1).min() for box in a.boxes_xyxy])


def test_committed_onnx_matches_readme_checksum() -> None:
    digest = hashlib.sha256(DEFAULT_MOVENET_ONNX.read_bytes()).hexdigest()
    assert digest == MOVENET_SHA256, "weights/movenet_multipose_lightning.onnx changed: update weights/README.md"
    assert DEFAULT_MOVENET_ONNX.stat().st_size < 50 * 2**20


def test_movenet_finds_both_performers_with_plausible_skeletons(movenet: MoveNetDetector, lab_frame: np.ndarray) -> None:
    h, w = lab_frame.shape[:2]
    dets = movenet.detect(lab_frame)
    assert len(dets) >= 2
    assert np.all(np.diff(dets.scores) <= 0), "sorted by descending score"
    assert np.all(dets.scores >= movenet.config.score_threshold)
    for box, kps in zip(dets.boxes_xyxy[:2], dets.keypoints[:2]):
        x1, y1, x2, y2 = box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert y2 - y1 > 0.3 * h, "the performers fill a good part of the frame height"
        confident = kps[:, 2] > 0.3
        assert confident.sum() >= 10
        # Confident joints lie in (a slightly enlarged) person box.
        pad = 0.1 * (y2 - y1)
        inside = (kps[:, 0] >= x1 - pad) & (kps[:, 0] <= x2 + pad) & (kps[:, 1] >= y1 - pad) & (kps[:, 1] <= y2 + pad)
        assert inside[confident].all()
        # Upright people: head above shoulders above hips above ankles (catches an x/y swap).
        y = {n: kps[KEYPOINT_INDEX[n], 1] for n in ("nose", "left_shoulder", "left_hip", "left_ankle")}
        assert y["nose"] < y["left_shoulder"] < y["left_hip"] < y["left_ankle"]


def test_movenet_boxes_follow_a_horizontal_flip(movenet: MoveNetDetector, lab_frame: np.ndarray) -> None:
    w = lab_frame.shape[1]
    dets = movenet.detect(lab_frame)
    flipped = movenet.detect(np.ascontiguousarray(lab_frame[:, ::-1]))
    mirrored = Detections(
        np.stack([w - flipped.boxes_xyxy[:, 2], flipped.boxes_xyxy[:, 1], w - flipped.boxes_xyxy[:, 0],
                  flipped.boxes_xyxy[:, 3]], axis=1), flipped.scores, flipped.keypoints)
    err = _match(_first(dets, 2), mirrored)
    assert np.all(err < 0.03 * lab_frame.shape[0]), err


def test_movenet_coordinates_are_in_source_pixels(movenet: MoveNetDetector) -> None:
    frame = read_frame("sports2d_demo.mp4", 20)  # landscape 1768x994
    dets = movenet.detect(frame)
    assert len(dets) >= 1
    # The same content at half size (and padded with black at the right/bottom) gives half the coordinates.
    small = cv2.resize(frame, (frame.shape[1] // 2, frame.shape[0] // 2), interpolation=cv2.INTER_AREA)
    padded = np.zeros((small.shape[0] + 100, small.shape[1] + 60, 3), np.uint8)
    padded[: small.shape[0], : small.shape[1]] = small
    for other, factor in ((small, 2.0), (padded, 2.0)):
        got = movenet.detect(other)
        assert len(got) >= 1
        scaled = Detections(got.boxes_xyxy * factor, got.scores, got.keypoints)
        err = _match(_first(dets, 1), scaled)
        assert err[0] < 0.05 * frame.shape[0], err


def test_larger_input_finds_small_pedestrians() -> None:
    frame = read_frame("vtest.avi", 100)
    dets = MoveNetDetector(long_side_px=512, score_threshold=0.15).detect(frame)
    assert len(dets) >= 3
    heights = dets.boxes_xyxy[:, 3] - dets.boxes_xyxy[:, 1]
    assert np.all(heights < 0.5 * frame.shape[0]), "vtest pedestrians are small"
    assert np.all(heights > 20)


def test_tiles_lift_the_six_person_cap_without_duplicates() -> None:
    frame = read_frame("vtest.avi", 716)  # 8 pedestrians in view (all found at scores >= 0.3 with tiles)
    h, w = frame.shape[:2]
    single = MoveNetDetector(long_side_px=512, score_threshold=0.15).detect(frame)
    tiled = MoveNetDetector(long_side_px=512, score_threshold=0.15, tiles=2).detect(frame)
    assert len(single) == 6, "one call fills all 6 slots"
    assert len(tiled) >= 7
    boxes = tiled.boxes_xyxy
    assert np.all((boxes[:, 0] >= 0) & (boxes[:, 2] <= w) & (boxes[:, 3] <= h))
    assert np.all((tiled.keypoints[..., 0] >= 0) & (tiled.keypoints[..., 0] <= w - 1))
    # Keypoints were shifted back with their boxes: confident joints sit in their person's box.
    for box, kps in zip(boxes, tiled.keypoints):
        ok = kps[:, 2] > 0.3
        assert np.all((kps[ok, 0] > box[0] - 10) & (kps[ok, 0] < box[2] + 10))
    iou = [_iou(boxes[i], boxes[j]) for i in range(len(boxes)) for j in range(i + 1, len(boxes))]
    assert max(iou, default=0.0) <= 0.5


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return float(iw * ih / union)


def test_merge_detections_drops_duplicates_and_contained_boxes() -> None:
    def dets(boxes: list, scores: list) -> Detections:
        return Detections(np.asarray(boxes, np.float32), np.asarray(scores, np.float32),
                          np.zeros((len(scores), 17, 3), np.float32))

    a = dets([[0, 0, 10, 20], [100, 0, 110, 20]], [0.9, 0.5])
    b = dets([[1, 0, 11, 20], [101, 2, 109, 12], [50, 0, 60, 20]], [0.6, 0.7, 0.4])
    merged = merge_detections([a, b])
    np.testing.assert_allclose(merged.scores, [0.9, 0.7, 0.4])  # the 0.6 twin and the 0.5 outer box go
    assert len(merge_detections([])) == 0


def test_empty_frame_gives_no_detection(movenet: MoveNetDetector) -> None:
    dets = movenet.detect(np.zeros((480, 640, 3), np.uint8))
    assert len(dets) == 0
    assert dets.boxes_xyxy.shape == (0, 4) and dets.keypoints.shape == (0, 17, 3)


def test_decode_movenet_maps_normalised_slots_to_pixels() -> None:
    # 1000x500 (w x h) frame, long side 256 -> resized 256x128, padded to 256x128 (already a multiple of 32).
    slots = np.zeros((6, 56), np.float32)
    slots[0, 51:55] = (0.25, 0.5, 0.75, 1.0)  # ymin, xmin, ymax, xmax
    slots[0, 0:3] = (0.5, 0.25, 0.9)  # nose y, x, score
    slots[0, 55] = 0.8
    slots[1, 55] = 0.05  # below threshold
    dets = decode_movenet(slots, (256 / 1000, 128 / 500), (128, 256), (500, 1000), 0.1)
    assert len(dets) == 1
    np.testing.assert_allclose(dets.boxes_xyxy[0], [500, 125, 1000, 375], atol=1e-3)
    np.testing.assert_allclose(dets.keypoints[0, 0], [250, 250, 0.9], atol=1e-3)


def test_letterbox_pads_to_multiples_of_32() -> None:
    image = np.full((1920, 1088, 3), (10, 20, 30), np.uint8)
    padded, (sx, sy) = letterbox(image, 256)
    assert padded.shape == (256, 160, 3)
    assert sx == pytest.approx(145 / 1088) and sy == pytest.approx(256 / 1920)
    assert tuple(padded[0, 0]) == (30, 20, 10), "RGB order"
    assert padded[:, 145:].max() == 0
    square, _ = letterbox(image, 256, pad_to_square=True)
    assert square.shape == (256, 256, 3)


def test_config_and_input_validation(movenet: MoveNetDetector) -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        MoveNetConfig(long_side_px=250)
    with pytest.raises(ValueError, match="score_threshold"):
        MoveNetConfig(score_threshold=1.5)
    with pytest.raises(ValueError, match="tiles"):
        MoveNetConfig(tiles=0)
    with pytest.raises(ValueError, match="uint8"):
        movenet.detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        movenet.detect(np.zeros((64, 64), np.uint8))


def test_missing_onnx_file_says_how_to_restore(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="git checkout"):
        MoveNetDetector(tmp_path / "nope.onnx")


@pytest.mark.parametrize("content", ["garbage", "truncated"])
def test_corrupt_onnx_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "movenet.onnx"
    if content == "garbage":
        bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    else:
        bad.write_bytes(DEFAULT_MOVENET_ONNX.read_bytes()[: 2**20])
    with pytest.raises(ValueError, match="corrupt"):
        MoveNetDetector(bad)


def test_other_onnx_model_is_rejected(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "relu.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match="does not look like MoveNet"):
        MoveNetDetector(path)


def test_hog_fallback() -> None:
    frame = read_frame("vtest.avi", 100)
    if not hasattr(cv2, "HOGDescriptor"):
        # OpenCV 5's main build has no HOG: the fallback must say how to get it, not fail obscurely.
        with pytest.raises(RuntimeError, match="opencv-contrib-python-headless"):
            HogPersonDetector()
        return
    dets = HogPersonDetector(long_side_px=768).detect(frame)
    h, w = frame.shape[:2]
    assert len(dets) >= 1
    assert np.all((dets.boxes_xyxy[:, 0] >= 0) & (dets.boxes_xyxy[:, 2] <= w) & (dets.boxes_xyxy[:, 3] <= h))
    assert np.all(dets.keypoints == 0)
    assert np.all(np.diff(dets.scores) <= 0)
