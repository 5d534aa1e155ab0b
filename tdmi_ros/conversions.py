"""Pure ROS message <-> numpy conversions for the pose node and its companions (no cv_bridge).

Every decoder validates its input and raises :class:`InputError` with a short ``reason`` key
(counted in /diagnostics) and a human message; callers drop the message and go on.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

from tdmi_core.skeleton import LIMBS, NUM_KEYPOINTS
from tdmi_core.visualize import draw_skeleton, track_color_rgb
from tdmi_ros import DECODER_MAX_PIXELS
from tdmi_ros.image_headers import HeaderError, ImageHeader, read_header

# ROS encoding -> (channels, numpy dtype, OpenCV conversion to BGR or None)
_ENCODINGS: dict[str, tuple[int, type, int | None]] = {
    "bgr8": (3, np.uint8, None),
    "8UC3": (3, np.uint8, None),  # by REP-104 convention, 3-channel 8-bit is BGR
    "rgb8": (3, np.uint8, cv2.COLOR_RGB2BGR),
    "bgra8": (4, np.uint8, cv2.COLOR_BGRA2BGR),
    "8UC4": (4, np.uint8, cv2.COLOR_BGRA2BGR),
    "rgba8": (4, np.uint8, cv2.COLOR_RGBA2BGR),
    "mono8": (1, np.uint8, cv2.COLOR_GRAY2BGR),
    "8UC1": (1, np.uint8, cv2.COLOR_GRAY2BGR),
    "mono16": (1, np.uint16, cv2.COLOR_GRAY2BGR),
    "16UC1": (1, np.uint16, cv2.COLOR_GRAY2BGR),
    "bgr16": (3, np.uint16, None),
    "16UC3": (3, np.uint16, None),
    "rgb16": (3, np.uint16, cv2.COLOR_RGB2BGR),
    "bgra16": (4, np.uint16, cv2.COLOR_BGRA2BGR),
    "rgba16": (4, np.uint16, cv2.COLOR_RGBA2BGR),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)
DEFAULT_MAX_PIXELS: int = DECODER_MAX_PIXELS  # refuse absurd sizes before allocating
MAX_BYTES_PER_PIXEL = 8  # rgba16, the widest encoding
# IMREAD_COLOR alone would turn JPEGs by their EXIF orientation: ROS's image_transport decoder does
# not, and boxes from an upstream detector refer to the stored pixel grid.
_IMDECODE_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def max_image_bytes(max_pixels: int) -> int:
    """Largest image message accepted for ``max_pixels``: every pixel at 8 bytes (rgba16), padding included."""
    return int(max_pixels) * MAX_BYTES_PER_PIXEL


class InputError(ValueError):
    """A message that cannot be used. ``reason`` is a short key counted in diagnostics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Any:
    """Integer nanoseconds -> ``builtin_interfaces/Time``."""
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def check_image(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Validate a ``sensor_msgs/Image``'s encoding, size, step and data length without reading a pixel.

    Cheap enough for a subscription callback; :func:`image_to_bgr` runs the same checks.

    Raises:
        InputError: reasons ``unknown_encoding``, ``bad_size`` (zero/huge dims, step or data length,
            more data than :func:`max_image_bytes`).
    """
    _image_layout(msg, max_pixels)


def _image_layout(msg: Any, max_pixels: int) -> tuple[int, type, int | None, int, int]:
    """``(channels, dtype, conversion, itemsize, row_bytes)`` of a valid image message (see :func:`check_image`)."""
    encoding = str(msg.encoding)
    if encoding not in _ENCODINGS:
        raise InputError(
            "unknown_encoding", f"image encoding {encoding!r} is not supported; use one of {SUPPORTED_ENCODINGS}"
        )
    channels, dtype, conversion = _ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if height <= 0 or width <= 0 or height * width > max_pixels:
        raise InputError("bad_size", f"image size {width}x{height} is empty or above {max_pixels} pixels")
    if step < row_bytes:
        raise InputError("bad_size", f"image step {step} < width*bytes_per_pixel = {row_bytes}")
    if step * height > max_image_bytes(max_pixels):
        raise InputError("bad_size", f"image step*height = {step * height} bytes is above {max_image_bytes(max_pixels)}")
    if len(msg.data) != step * height:
        raise InputError("bad_size", f"image data has {len(msg.data)} bytes, expected step*height = {step * height}")
    return channels, dtype, conversion, itemsize, row_bytes


def image_to_bgr(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` into a BGR image.

    Handles row padding (``step > width * bytes_per_pixel``), big-endian 16-bit data, and scales
    16-bit encodings to 8 bits by keeping the high byte (full 0..65535 range -> 0..255).

    Returns:
        ``image[H, W, 3]`` uint8, C-contiguous, owning its memory.

    Raises:
        InputError: see :func:`check_image`.
    """
    channels, _, conversion, itemsize, row_bytes = _image_layout(msg, max_pixels)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(msg.data, dtype=np.uint8)
    rows = data.reshape(height, step)[:, :row_bytes]  # a view: nothing is copied yet
    if itemsize > 1:
        # keep the high byte of each sample, picked straight from the bytes (no 16-bit copy)
        high = 0 if msg.is_bigendian else 1
        rows = rows.reshape(height, width * channels, 2)[:, :, high]
    image = np.ascontiguousarray(rows).reshape(height, width, channels)  # copies if padded or 16-bit
    if conversion is not None:
        return cv2.cvtColor(image, conversion)
    if np.shares_memory(image, data):  # still the message's buffer: copy so the caller owns it
        image = image.copy()
    return image


def check_compressed(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Validate a ``sensor_msgs/CompressedImage`` from its header alone (nothing is decoded).

    Cheap enough for a subscription callback; :func:`compressed_to_bgr` runs the same checks.

    Raises:
        InputError: reasons ``decode_failed`` (empty data, another format, a truncated or forged
            header), ``bad_size`` (declared size empty or above ``max_pixels``, more data than
            :func:`max_image_bytes`).
    """
    _compressed_header(msg, max_pixels)


def _compressed_header(msg: Any, max_pixels: int) -> ImageHeader:
    size = len(msg.data)
    if size == 0:
        raise InputError("decode_failed", "compressed image has no data")
    if size > max_image_bytes(max_pixels):
        raise InputError("bad_size", f"compressed image of {size} bytes is above {max_image_bytes(max_pixels)}")
    try:
        header = read_header(msg.data)
    except HeaderError as e:
        raise InputError("decode_failed", f"compressed image (format {msg.format!r}) refused: {e}") from e
    if header.width <= 0 or header.height <= 0 or header.pixels > max_pixels:
        raise InputError("bad_size", f"{header.format} header declares {header.width}x{header.height}: "
                                     f"empty or above {max_pixels} pixels")
    return header


def compressed_to_bgr(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG, PNG, BMP or WebP) to BGR.

    The size the header declares is checked before anything is decoded (:func:`check_compressed`,
    :func:`tdmi_ros.image_headers.read_header`); the decoded image must have exactly that size.
    OpenCV's own limit (``OPENCV_IO_MAX_IMAGE_PIXELS``, set when ``tdmi_ros`` is imported) bounds
    the decoder as well. EXIF orientation is ignored, as ROS's image_transport does.

    Returns:
        ``image[H, W, 3]`` uint8.

    Raises:
        InputError: reasons ``decode_failed`` (see :func:`check_compressed`; also a truncated or
            corrupt stream, a decoder error), ``bad_size``.
    """
    header = _compressed_header(msg, max_pixels)
    try:
        image = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), _IMDECODE_FLAGS)
    except cv2.error as e:  # OpenCV refuses some streams by exception rather than by returning None
        raise InputError("decode_failed", f"{header.format} decoder failed: {str(e).strip()[-200:]}") from e
    if image is None:
        raise InputError("decode_failed", f"could not decode {header.format} image (format {msg.format!r})")
    if image.shape[:2] != (header.height, header.width):
        raise InputError("decode_failed", f"decoded {image.shape[1]}x{image.shape[0]} but the "
                                          f"{header.format} header declares {header.width}x{header.height}")
    return image


def bgr_to_image_msg(image: np.ndarray, header: Any) -> Any:
    """``image[H, W, 3]`` uint8 BGR -> ``sensor_msgs/Image`` (bgr8, no padding) with ``header``."""
    from sensor_msgs.msg import Image

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 [H, W, 3] BGR image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    msg = Image(header=header, height=height, width=width, encoding="bgr8", is_bigendian=0, step=width * 3)
    msg.data = np.ascontiguousarray(image).tobytes()
    return msg


def bgr_to_compressed_msg(image: np.ndarray, header: Any, quality: int = 90) -> Any:
    """``image[H, W, 3]`` uint8 BGR -> JPEG ``sensor_msgs/CompressedImage``."""
    from sensor_msgs.msg import CompressedImage

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    msg = CompressedImage(header=header, format="bgr8; jpeg compressed bgr8")
    msg.data = buf.tobytes()
    return msg


@dataclass
class ParsedDetections:
    """Valid person boxes of one frame, clipped to the image.

    Attributes:
        boxes_xyxy: ``[N, 4]`` float64 (x1, y1, x2, y2) pixels, inside the image.
        scores: ``[N]`` float64 in [0, 1].
        track_ids: ``[N]`` int64, -1 where the detector gave no id.
        drops: boxes dropped by reason (``bad_box``, ``out_of_image``, ``low_score``,
            ``duplicate_track_id``, ``max_persons``).
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray
    drops: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def _select_boxes(
    raw: np.ndarray, width: int, height: int, min_score: float, min_box_size_px: float, max_persons: int
) -> ParsedDetections:
    """Validate rows of ``raw[N, 6] = (cx, cy, w, h, score, track_id)``."""
    drops: Counter = Counter()
    raw = raw.reshape(-1, 6)
    finite = np.all(np.isfinite(raw), axis=1)
    positive = (raw[:, 2] > 0) & (raw[:, 3] > 0) & (raw[:, 4] >= 0) & (raw[:, 4] <= 1.0 + 1e-6)
    valid = finite & positive
    drops["bad_box"] += int(np.count_nonzero(~valid))
    raw = raw[valid]
    x1 = np.clip(raw[:, 0] - raw[:, 2] / 2, 0, width)
    y1 = np.clip(raw[:, 1] - raw[:, 3] / 2, 0, height)
    x2 = np.clip(raw[:, 0] + raw[:, 2] / 2, 0, width)
    y2 = np.clip(raw[:, 1] + raw[:, 3] / 2, 0, height)
    inside = ((x2 - x1) >= min_box_size_px) & ((y2 - y1) >= min_box_size_px)
    drops["out_of_image"] += int(np.count_nonzero(~inside))
    keep = inside & (raw[:, 4] >= min_score)
    drops["low_score"] += int(np.count_nonzero(inside & ~keep))
    boxes = np.stack([x1, y1, x2, y2], axis=1)[keep]
    scores = np.clip(raw[keep, 4], 0.0, 1.0)
    track_ids = raw[keep, 5].astype(np.int64)
    order = np.argsort(-scores, kind="stable")
    boxes, scores, track_ids = boxes[order], scores[order], track_ids[order]
    # two boxes claiming one id: keep the more confident (ids must name one person per frame)
    seen: set[int] = set()
    unique = np.ones(len(scores), dtype=bool)
    for i, tid in enumerate(track_ids):
        if tid >= 0:
            if tid in seen:
                unique[i] = False
            seen.add(int(tid))
    drops["duplicate_track_id"] += int(np.count_nonzero(~unique))
    boxes, scores, track_ids = boxes[unique], scores[unique], track_ids[unique]
    if len(scores) > max_persons:
        drops["max_persons"] += len(scores) - max_persons
        boxes, scores, track_ids = boxes[:max_persons], scores[:max_persons], track_ids[:max_persons]
    return ParsedDetections(boxes.astype(np.float64), scores.astype(np.float64), track_ids, +drops)


def detections_to_boxes(
    msg: Any, width: int, height: int, min_score: float = 0.0, min_box_size_px: float = 2.0, max_persons: int = 16
) -> ParsedDetections:
    """``tdmi_msgs/PersonDetectionArray`` -> valid boxes clipped to a ``width`` x ``height`` image.

    Boxes with NaN/inf, non-positive size or a score outside [0, 1] are ``bad_box``; boxes with
    less than ``min_box_size_px`` inside the image are ``out_of_image``. At most ``max_persons``
    boxes are kept, the most confident first.
    """
    raw = np.array(
        [
            (d.box.center_x, d.box.center_y, d.box.size_x, d.box.size_y, d.score, float(d.track_id))
            for d in msg.detections
        ],
        dtype=np.float64,
    ).reshape(-1, 6)
    return _select_boxes(raw, width, height, min_score, min_box_size_px, max_persons)


def vision_detections_to_boxes(
    msg: Any,
    width: int,
    height: int,
    person_class_ids: Sequence[str] = ("person", "0", "1"),
    min_score: float = 0.0,
    min_box_size_px: float = 2.0,
    max_persons: int = 16,
) -> ParsedDetections:
    """``vision_msgs/Detection2DArray`` -> person boxes (as :func:`detections_to_boxes`).

    A detection counts as a person when its best hypothesis' ``class_id`` is in
    ``person_class_ids``; its score is that hypothesis' score. ``Detection2D.id`` becomes the
    track id when it is a non-negative integer string, else -1.
    """
    rows = []
    drops: Counter = Counter()
    for det in msg.detections:
        best = max(det.results, key=lambda r: r.hypothesis.score, default=None)
        if best is None or str(best.hypothesis.class_id) not in person_class_ids:
            drops["not_person"] += 1
            continue
        tid = int(det.id) if str(det.id).isdigit() and int(det.id) < 2**31 else -1
        center = det.bbox.center.position
        rows.append((center.x, center.y, det.bbox.size_x, det.bbox.size_y, best.hypothesis.score, float(tid)))
    parsed = _select_boxes(np.array(rows, dtype=np.float64), width, height, min_score, min_box_size_px, max_persons)
    parsed.drops.update(drops)
    return parsed


def boxes_to_detection_msg(
    boxes_xyxy: np.ndarray, scores: np.ndarray, header: Any, track_ids: np.ndarray | None = None
) -> Any:
    """``boxes_xyxy[N, 4]``, ``scores[N]`` (+ optional ``track_ids[N]``) -> ``PersonDetectionArray``."""
    from tdmi_msgs.msg import BoundingBox2D, PersonDetection, PersonDetectionArray

    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    ids = np.full(len(boxes), PersonDetection.NO_TRACK_ID) if track_ids is None else np.asarray(track_ids)
    out = PersonDetectionArray(header=header)
    for (x1, y1, x2, y2), score, tid in zip(boxes, np.asarray(scores, dtype=np.float64).reshape(-1), ids):
        box = BoundingBox2D(
            center_x=float((x1 + x2) / 2), center_y=float((y1 + y2) / 2), size_x=float(x2 - x1), size_y=float(y2 - y1)
        )
        out.detections.append(PersonDetection(box=box, score=float(score), track_id=int(tid)))
    return out


def clip_keypoints_to_image(keypoints: np.ndarray, width: int, height: int) -> np.ndarray:
    """Move keypoints that fall outside a ``width`` x ``height`` image onto its border, score 0.

    A person near the border is cropped with padding, so a prediction can land outside the
    image; /poses promises in-image coordinates, and the zero score says "not seen".

    Args:
        keypoints: ``[..., K, 3]`` (x_px, y_px, score).

    Returns:
        A clipped copy; non-finite coordinates also get score 0.
    """
    kps = np.array(keypoints, dtype=np.float32)  # the message's type
    x, y = kps[..., 0], kps[..., 1]
    outside = ~(np.isfinite(x) & np.isfinite(y) & (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1))
    kps[..., 0] = np.clip(np.nan_to_num(x, nan=0.0), 0, width - 1)
    kps[..., 1] = np.clip(np.nan_to_num(y, nan=0.0), 0, height - 1)
    kps[..., 2] = np.where(outside, 0.0, kps[..., 2])
    return kps


def _unit(values: Any) -> Any:
    """Clip to [0, 1] with NaN -> 0 (scalars or arrays)."""
    return np.clip(np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0), 0.0, 1.0)


def poses_to_msg(poses: Sequence[Any], header: Any, image_size_wh: tuple[int, int] | None = None) -> Any:
    """Runtime ``PersonPose`` list -> ``tdmi_msgs/Skeleton2DArray`` with ``header`` (frame t's).

    Each pose needs ``track_id``, ``box_xyxy[4]``, ``box_score``, ``keypoints[17, 3]`` (x_px, y_px,
    score) and ``score``. All 17 keypoints are kept; low scores are not filtered. Scores are
    clipped to [0, 1] as the message promises (a heatmap peak can overshoot; NaN -> 0). With
    ``image_size_wh``, keypoints outside the image are clipped (:func:`clip_keypoints_to_image`).
    """
    from tdmi_msgs.msg import BoundingBox2D, Keypoint2D, Skeleton2D, Skeleton2DArray

    out = Skeleton2DArray(header=header)
    if not poses:
        return out
    keypoints = [np.asarray(pose.keypoints, dtype=np.float32) for pose in poses]
    for kps in keypoints:
        if kps.shape != (NUM_KEYPOINTS, 3):
            raise ValueError(f"pose keypoints must be [{NUM_KEYPOINTS}, 3], got {kps.shape}")
    kps_all = np.stack(keypoints)  # [P, 17, 3], float32 as the message: clipped once for all persons
    if image_size_wh is not None:
        kps_all = clip_keypoints_to_image(kps_all, *image_size_wh)
    kps_all[..., 2] = _unit(kps_all[..., 2])
    box_scores = _unit([pose.box_score for pose in poses]).tolist()
    scores = _unit([pose.score for pose in poses]).tolist()
    for pose, kps, box_score, score in zip(poses, kps_all.tolist(), box_scores, scores):
        x1, y1, x2, y2 = (float(v) for v in np.asarray(pose.box_xyxy, dtype=np.float64).reshape(4))
        skel = Skeleton2D(
            track_id=int(pose.track_id),
            box=BoundingBox2D(center_x=(x1 + x2) / 2, center_y=(y1 + y2) / 2, size_x=x2 - x1, size_y=y2 - y1),
            box_score=box_score,
            keypoints=[Keypoint2D(x=x, y=y, score=s) for x, y, s in kps],
            score=score,
        )
        out.skeletons.append(skel)
    return out


def skeleton_array_to_numpy(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """``Skeleton2DArray`` -> (``track_ids[P]`` int64, ``keypoints[P, 17, 3]`` float64)."""
    ids = np.array([s.track_id for s in msg.skeletons], dtype=np.int64)
    kps = np.array(
        [[(k.x, k.y, k.score) for k in s.keypoints] for s in msg.skeletons], dtype=np.float64
    ).reshape(-1, NUM_KEYPOINTS, 3)
    return ids, kps


def skeletons_to_markers(
    msg: Any, lifetime_s: float, scale_m_per_px: float = 0.01, min_keypoint_score: float = 0.2, namespace: str = "tdmi"
) -> Any:
    """``Skeleton2DArray`` -> ``visualization_msgs/MarkerArray`` for RViz.

    Per skeleton: one SPHERE_LIST of joints (id 2*k) and one LINE_LIST of limbs (id 2*k + 1),
    k = track_id mod 2**30 so ids stay int32, coloured by track id, in the image's frame with pixel (u, v) placed at
    (u, v, 0) * ``scale_m_per_px`` (x right, y down, as an optical frame). Joints below
    ``min_keypoint_score`` and limbs touching them are left out. Markers expire after
    ``lifetime_s`` so people who leave disappear.
    """
    from builtin_interfaces.msg import Duration
    from geometry_msgs.msg import Point
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    sec, nanosec = divmod(int(round(lifetime_s * 1e9)), 1_000_000_000)
    lifetime = Duration(sec=sec, nanosec=nanosec)
    out = MarkerArray()
    for skel in msg.skeletons:
        r, g, b = track_color_rgb(skel.track_id)
        color = ColorRGBA(r=float(r), g=float(g), b=float(b), a=1.0)
        points = [Point(x=k.x * scale_m_per_px, y=k.y * scale_m_per_px, z=0.0) for k in skel.keypoints]
        ok = [bool(np.isfinite(k.x) and np.isfinite(k.y) and k.score >= min_keypoint_score) for k in skel.keypoints]
        key = int(skel.track_id) % 2**30
        joints = Marker(header=msg.header, ns=namespace, id=2 * key, type=Marker.SPHERE_LIST,
                        action=Marker.ADD, lifetime=lifetime, color=color)
        joints.pose.orientation.w = 1.0
        joints.scale.x = joints.scale.y = joints.scale.z = 6.0 * scale_m_per_px
        joints.points = [p for p, good in zip(points, ok) if good]
        limbs = Marker(header=msg.header, ns=namespace, id=2 * key + 1, type=Marker.LINE_LIST,
                       action=Marker.ADD, lifetime=lifetime, color=color)
        limbs.pose.orientation.w = 1.0
        limbs.scale.x = 2.0 * scale_m_per_px
        for a, b_ in LIMBS:
            if ok[a] and ok[b_]:
                limbs.points.extend([points[a], points[b_]])
        out.markers.extend([joints, limbs])
    return out


def draw_skeletons(image: np.ndarray, msg: Any, min_keypoint_score: float = 0.2) -> np.ndarray:
    """Draw boxes, limbs and joints of a ``Skeleton2DArray`` on a copy of ``image[H, W, 3]`` BGR."""
    out = image.copy()
    ids, keypoints = skeleton_array_to_numpy(msg)
    for skel, track_id, kps in zip(msg.skeletons, ids, keypoints):
        half_w, half_h = skel.box.size_x / 2, skel.box.size_y / 2
        box = (skel.box.center_x - half_w, skel.box.center_y - half_h, skel.box.center_x + half_w,
               skel.box.center_y + half_h)
        draw_skeleton(out, kps, int(track_id), box, min_score=min_keypoint_score)
    return out
