"""tdmi_ros.conversions: image decoding (encodings, padding, endianness, errors), detections
validation, poses/markers messages. Messages go through serialize/deserialize like on the wire."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

rclpy_serialization = pytest.importorskip("rclpy.serialization")
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from tdmi_msgs.msg import BoundingBox2D, PersonDetection, PersonDetectionArray, Skeleton2DArray  # noqa: E402

from tdmi_core.skeleton import LIMBS  # noqa: E402
from tdmi_ros import conversions as conv  # noqa: E402


def wire(msg):
    return deserialize_message(serialize_message(msg), type(msg))


def make_image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """Pack ``pixels[H, W, C]`` into an Image with ``pad`` junk bytes per row."""
    h, w = pixels.shape[:2]
    arr = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<")) if pixels.itemsize > 1 else pixels
    rows = arr.reshape(h, -1).view(np.uint8).reshape(h, -1)
    junk = np.full((h, pad), 0xAB, np.uint8)
    data = np.concatenate([rows, junk], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=data.shape[1])
    msg.data = data.tobytes()
    return wire(msg)


RNG = np.random.default_rng(0)
BGR = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize("pad", [0, 3, 64])
@pytest.mark.parametrize(
    ("encoding", "pixels", "expected"),
    [
        ("bgr8", BGR, BGR),
        ("8UC3", BGR, BGR),
        ("rgb8", BGR[..., ::-1].copy(), BGR),
        ("bgra8", np.dstack([BGR, np.full((5, 7), 9, np.uint8)]), BGR),
        ("rgba8", np.dstack([BGR[..., ::-1], np.full((5, 7), 9, np.uint8)]), BGR),
        ("mono8", BGR[..., :1].copy(), np.repeat(BGR[..., :1], 3, axis=2)),
        ("bgr16", BGR.astype(np.uint16) * 257, BGR),
        ("rgb16", (BGR[..., ::-1].astype(np.uint16) * 256 + 100), BGR),
        ("mono16", (BGR[..., :1].astype(np.uint16) << 8) | 0xFF, np.repeat(BGR[..., :1], 3, axis=2)),
        ("16UC1", BGR[..., :1].astype(np.uint16) << 8, np.repeat(BGR[..., :1], 3, axis=2)),
    ],
)
def test_image_decodes_every_encoding_with_row_padding(encoding, pixels, expected, pad):
    out = conv.image_to_bgr(make_image(pixels, encoding, pad))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


def test_big_endian_16_bit():
    pixels = (BGR[..., :1].astype(np.uint16) << 8) | 0x12
    out = conv.image_to_bgr(make_image(pixels, "mono16", pad=2, bigendian=True))
    np.testing.assert_array_equal(out[..., 0], BGR[..., 0])


def test_decoded_image_owns_its_memory():
    msg = make_image(BGR, "bgr8")
    out = conv.image_to_bgr(msg)
    msg.data = bytes(len(msg.data))  # the message buffer is reused/replaced
    np.testing.assert_array_equal(out, BGR)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda m: setattr(m, "encoding", "yuv422_yuy2"), "unknown_encoding"),
        (lambda m: setattr(m, "encoding", ""), "unknown_encoding"),
        (lambda m: setattr(m, "step", m.step - 1), "bad_size"),
        (lambda m: setattr(m, "height", m.height + 1), "bad_size"),
        (lambda m: setattr(m, "width", 0), "bad_size"),
        (lambda m: setattr(m, "height", 0), "bad_size"),
        (lambda m: setattr(m, "data", bytes(m.data)[:-1]), "bad_size"),
        (lambda m: setattr(m, "data", b""), "bad_size"),
        (lambda m: (setattr(m, "width", 2**31), setattr(m, "height", 2**31)), "bad_size"),
    ],
)
def test_bad_images_raise_input_error_with_reason(mutate, reason):
    msg = make_image(BGR, "bgr8", pad=4)
    mutate(msg)
    for check in (conv.image_to_bgr, conv.check_image):  # the callback's header check finds the same
        with pytest.raises(conv.InputError) as info:
            check(msg)
        assert info.value.reason == reason


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(0, 9), width=st.integers(0, 9), step=st.integers(0, 80), nbytes=st.integers(0, 400),
    encoding=st.sampled_from([*conv.SUPPORTED_ENCODINGS, "32FC1", "bayer_rggb8", "junk"]),
    bigendian=st.integers(0, 1),
)
def test_arbitrary_image_headers_decode_or_raise_input_error(height, width, step, nbytes, encoding, bigendian):
    msg = Image(height=height, width=width, step=step, encoding=encoding, is_bigendian=bigendian)
    msg.data = bytes(nbytes)
    try:
        conv.check_image(msg)
    except conv.InputError:
        with pytest.raises(conv.InputError):
            conv.image_to_bgr(msg)
        return
    out = conv.image_to_bgr(msg)  # a header that passes the check always decodes
    assert out.shape == (height, width, 3) and out.dtype == np.uint8


def test_compressed_jpeg_and_png_decode_and_garbage_raises():
    img = np.zeros((32, 48, 3), np.uint8)
    img[8:24, 10:30] = (10, 200, 50)
    jpeg = wire(conv.bgr_to_compressed_msg(img, Header()))
    out = conv.compressed_to_bgr(jpeg)
    assert out.shape == (32, 48, 3) and np.abs(out.astype(int) - img).mean() < 4
    ok, png = cv2.imencode(".png", img)
    msg = CompressedImage(format="png")
    msg.data = png.tobytes()
    np.testing.assert_array_equal(conv.compressed_to_bgr(wire(msg)), img)
    for data in (b"", b"\xff\xd8\xff garbage", bytes(range(256))):
        bad = CompressedImage(format="jpeg")
        bad.data = data
        with pytest.raises(conv.InputError) as info:
            conv.compressed_to_bgr(bad)
        assert info.value.reason == "decode_failed"


def test_bgr_to_image_msg_round_trip():
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = wire(conv.bgr_to_image_msg(BGR, header))
    assert (msg.encoding, msg.step, msg.header.frame_id, msg.header.stamp.nanosec) == ("bgr8", 21, "cam", 345)
    np.testing.assert_array_equal(conv.image_to_bgr(msg), BGR)


def test_stamp_ns_round_trip():
    for ns in (0, 1, 999_999_999, 1_000_000_000, 1_795_637_272_781_771_006):
        assert conv.stamp_to_ns(conv.ns_to_stamp(ns)) == ns


def det(cx, cy, w, h, score, tid=-1):
    # float() matters: rosidl's Python setters accept ints for float32 fields, but serialising such a
    # message aborts the process (C assert in convert_from_py)
    box = BoundingBox2D(center_x=float(cx), center_y=float(cy), size_x=float(w), size_y=float(h))
    return PersonDetection(box=box, score=float(score), track_id=tid)


def test_detections_validated_clipped_and_counted():
    msg = PersonDetectionArray()
    msg.detections = [
        det(50, 40, 20, 40, 0.9, 3),          # fine
        det(5, 5, 30, 30, 0.8, 4),            # partly outside: clipped to x1=y1=0
        det(math.nan, 40, 20, 40, 0.9),       # NaN
        det(50, 40, -5, 40, 0.9),             # negative width
        det(50, 40, 20, 40, math.inf),        # inf score
        det(500, 500, 20, 20, 0.9),           # fully outside
        det(50, 40, 20, 40, 0.1),             # low score
        det(60, 40, 20, 40, 0.7, 3),          # duplicate id 3 (lower score)
        det(50, 40, 0, 0, 0.9),               # empty
    ]
    parsed = conv.detections_to_boxes(wire(msg), width=100, height=80, min_score=0.3, min_box_size_px=2)
    np.testing.assert_allclose(parsed.boxes_xyxy, [[40, 20, 60, 60], [0, 0, 20, 20]])
    np.testing.assert_array_equal(parsed.track_ids, [3, 4])
    assert dict(parsed.drops) == {"bad_box": 4, "out_of_image": 1, "low_score": 1, "duplicate_track_id": 1}
    assert np.all(parsed.boxes_xyxy[:, [0, 2]] <= 100) and np.all(parsed.boxes_xyxy >= 0)


def test_detections_max_persons_keeps_most_confident_and_empty_is_fine():
    msg = PersonDetectionArray()
    msg.detections = [det(10 + 10 * i, 40, 8, 20, 0.1 * (i + 1)) for i in range(9)]
    parsed = conv.detections_to_boxes(msg, 100, 80, max_persons=3)
    np.testing.assert_allclose(parsed.scores, [0.9, 0.8, 0.7], rtol=1e-6)
    assert parsed.drops["max_persons"] == 6
    empty = conv.detections_to_boxes(PersonDetectionArray(), 100, 80)
    assert len(empty) == 0 and empty.boxes_xyxy.shape == (0, 4)


class _Pose:
    def __init__(self, track_id, kps):
        self.track_id, self.keypoints = track_id, kps
        self.box_xyxy, self.box_score, self.score = np.array([10.0, 20.0, 50.0, 100.0]), 0.8, float(kps[:, 2].mean())


def test_poses_to_msg_keeps_header_and_all_17_keypoints():
    kps = np.column_stack([np.arange(17) * 2.0, np.arange(17) * 3.0, np.linspace(0, 1, 17)]).astype(np.float32)
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 7, 8
    msg = wire(conv.poses_to_msg([_Pose(5, kps), _Pose(9, kps)], header))
    assert isinstance(msg, Skeleton2DArray)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (7, 8, "cam")
    ids, arr = conv.skeleton_array_to_numpy(msg)
    np.testing.assert_array_equal(ids, [5, 9])
    np.testing.assert_allclose(arr[0], kps, rtol=1e-6)
    s = msg.skeletons[0]
    assert (s.box.center_x, s.box.center_y, s.box.size_x, s.box.size_y) == (30.0, 60.0, 40.0, 80.0)
    with pytest.raises(ValueError, match="17, 3"):
        conv.poses_to_msg([_Pose(1, kps[:5])], header)


def test_markers_joints_limbs_colour_and_lifetime():
    kps = np.column_stack([np.full(17, 100.0), np.arange(17) * 10.0, np.ones(17)]).astype(np.float32)
    kps[0, 2] = 0.0  # nose below the score threshold: no joint, no limbs touching it
    msg = conv.poses_to_msg([_Pose(2, kps), _Pose(3, kps)], Header(frame_id="cam"))
    markers = wire(conv.skeletons_to_markers(msg, lifetime_s=0.25, scale_m_per_px=0.01, min_keypoint_score=0.5))
    assert len(markers.markers) == 4
    joints, limbs = markers.markers[0], markers.markers[1]
    assert (joints.id, limbs.id, joints.header.frame_id) == (4, 5, "cam")
    assert len(joints.points) == 16
    assert len(limbs.points) == 2 * sum(1 for a, b in LIMBS if 0 not in (a, b))
    assert joints.lifetime.sec == 0 and joints.lifetime.nanosec == 250_000_000
    assert joints.points[0].x == pytest.approx(1.0) and joints.points[0].y == pytest.approx(0.1)
    c2, c3 = markers.markers[0].color, markers.markers[2].color
    assert (c2.r, c2.g, c2.b) != (c3.r, c3.g, c3.b)
    assert conv.track_color_rgb(2) == conv.track_color_rgb(2)


def test_draw_skeletons_marks_pixels_and_copies():
    img = np.zeros((120, 160, 3), np.uint8)
    kps = np.column_stack([np.linspace(20, 140, 17), np.linspace(10, 110, 17), np.ones(17)]).astype(np.float32)
    out = conv.draw_skeletons(img, conv.poses_to_msg([_Pose(1, kps)], Header()))
    assert out.any() and not img.any()


def test_keypoints_outside_image_are_clipped_with_zero_score_and_scores_unit_range():
    kps = np.zeros((17, 3))
    kps[:, 2] = 0.5
    kps[0] = (-3.0, 10.0, 0.9)      # left of the image
    kps[1] = (70.0, 50.0, 0.9)      # beyond both far borders (image 64x48)
    kps[2] = (np.nan, 5.0, 0.9)     # not finite
    kps[3] = (10.0, 10.0, 1.3)      # in the image, score overshoots
    kps[4] = (10.0, 10.0, -1e-9)    # score slightly negative
    pose = _Pose(1, kps)
    pose.score = 1.2
    msg = conv.poses_to_msg([pose], Header(), image_size_wh=(64, 48))
    _, out = conv.skeleton_array_to_numpy(msg)
    out = out[0]
    np.testing.assert_allclose(out[0], [0, 10, 0])
    np.testing.assert_allclose(out[1], [63, 47, 0])
    np.testing.assert_allclose(out[2], [0, 5, 0])
    np.testing.assert_allclose(out[3], [10, 10, 1])
    np.testing.assert_allclose(out[4], [10, 10, 0])
    np.testing.assert_allclose(out[5:, 2], 0.5)
    assert msg.skeletons[0].score == 1.0
    assert conv.clip_keypoints_to_image(kps, 64, 48).dtype == np.float32  # the message's type, no float64 copy


def test_marker_ids_stay_int32_for_extreme_track_ids():
    kps = np.column_stack([np.full(17, 5.0), np.full(17, 5.0), np.ones(17)]).astype(np.float32)
    msg = conv.poses_to_msg([_Pose(2**31 - 1, kps), _Pose(0, kps)], Header())
    markers = wire(conv.skeletons_to_markers(msg, lifetime_s=0.5))  # would abort if an id overflowed
    ids = [m.id for m in markers.markers]
    assert len(set(ids)) == 4 and all(0 <= i < 2**31 for i in ids)
