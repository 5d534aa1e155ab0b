"""Hypothesis strategies for hostile input to the pose node, each message labelled with what the node
may do with it (an independent oracle, not the node's own code).

A generated *batch* is a list of messages for one node: camera images (``sensor_msgs/Image`` or
``CompressedImage``), ``tdmi_msgs/PersonDetectionArray`` (and ``vision_msgs/Detection2DArray``
when installed), with stamps from a sequence of moves (next frame, repeat, small or restart-sized
steps back, jumps ahead, the far past and future, nanoseconds >= 1e9). Messages come mostly as
frames (an image and its detections, in either order, sometimes without detections, with a decoy
second array, or from another frame_id) and some alone.

Labels: every image carries the set of decode outcomes it may have, ``VALID`` (it reaches the
stamp pairer) or a drop reason (``image_unknown_encoding``, ``image_bad_size``,
``image_decode_failed``); what happens after decoding is checked by accounting (see
test_fuzz_node.py).
"""
from __future__ import annotations

import functools
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from hypothesis import strategies as st

VALID = "valid"
BAD_ENCODING, BAD_SIZE, DECODE_FAILED = "image_unknown_encoding", "image_bad_size", "image_decode_failed"
# bytes per pixel of every encoding the node accepts (written out here, not imported: the oracle)
BYTES_PER_PIXEL = {
    "bgr8": 3, "8UC3": 3, "rgb8": 3, "bgra8": 4, "8UC4": 4, "rgba8": 4, "mono8": 1, "8UC1": 1,
    "mono16": 2, "16UC1": 2, "bgr16": 6, "16UC3": 6, "rgb16": 6, "bgra16": 8, "rgba16": 8,
}
UNKNOWN_ENCODINGS = ["", "32FC1", "64FC1", "yuv422_yuy2", "bayer_rggb8", "jpeg", "BGR8", "bgr8 ", "ü" * 40, "nv21"]
SECOND_NS = 1_000_000_000
PERIOD_NS = 33_333_333
UINT32_MAX = 2**32 - 1


@dataclass
class Sent:
    """One message to publish and what it may do.

    Attributes:
        topic: ``image``, ``image/compressed`` or ``detections``.
        kind: a short name for the summary (e.g. ``raw_bad_size``, ``compressed_forged_huge``).
        msg: the ROS message.
        outcomes: images only: the decode outcomes allowed (``VALID`` or drop reasons).
        size_wh: images only: the size it decodes to when valid.
    """

    topic: str
    kind: str
    msg: Any
    outcomes: frozenset[str] = frozenset()
    size_wh: tuple[int, int] | None = None

    @property
    def stamp_ns(self) -> int:
        return int(self.msg.header.stamp.sec) * SECOND_NS + int(self.msg.header.stamp.nanosec)

    def __repr__(self) -> str:  # (hypothesis prints failing batches: not the pixels)
        return (f"Sent({self.kind}, stamp_ns={self.stamp_ns}, frame_id={self.msg.header.frame_id!r}, "
                f"outcomes={sorted(self.outcomes)}, size_wh={self.size_wh})")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass
class Batch:
    messages: list[Sent] = field(default_factory=list)

    def count(self, topic: str) -> int:
        return sum(m.topic == topic for m in self.messages)


# ---------------------------------------------------------------------------------------- stamps
STAMP_MOVES = {  # name -> new stamp (ns) from the previous one and a random draw in [0, 1)
    "next": lambda t, u: t + PERIOD_NS,
    "repeat": lambda t, u: t,
    "back_small": lambda t, u: t - int((1 + u * 499) * 1_000_000),
    "back_restart": lambda t, u: t - int((11 + u * 3600) * SECOND_NS),  # the fuzz node's stamp_reset_s is 10
    "ahead": lambda t, u: t + int((1 + u * 29) * SECOND_NS),
    "far_future": lambda t, u: t + int((1e5 + u * 1e6) * SECOND_NS),
    "far_past": lambda t, u: int((-(2**31) + u * 2**31) * SECOND_NS),
}
STAMP_WEIGHTS = {"next": 12, "repeat": 1, "back_small": 1, "back_restart": 1, "ahead": 1, "far_future": 1,
                 "far_past": 1}


def stamp_moves() -> st.SearchStrategy[tuple[str, float]]:
    names = [n for n, w in STAMP_WEIGHTS.items() for _ in range(w)]
    return st.tuples(st.sampled_from(names), st.floats(0.0, 1.0, exclude_max=True))


def make_stamp(ns: int, nanosec_overflow: bool = False) -> Any:
    """``builtin_interfaces/Time`` for ``ns`` (sec clamped to int32); optionally nanosec >= 1e9."""
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(int(ns), SECOND_NS)
    sec = max(-(2**31), min(2**31 - 1, sec))
    if nanosec_overflow and sec > -(2**31):
        sec, nanosec = sec - 1, nanosec + SECOND_NS  # the same instant, written with nanosec >= 1e9
    return Time(sec=sec, nanosec=nanosec)


def header(stamp: Any, frame_id: str) -> Any:
    from std_msgs.msg import Header

    return Header(stamp=stamp, frame_id=frame_id)


# ---------------------------------------------------------------------------------------- raw images
def raw_image_label(encoding: str, width: int, height: int, step: int, nbytes: int, max_pixels: int) -> str:
    if encoding not in BYTES_PER_PIXEL:
        return BAD_ENCODING
    if width == 0 or height == 0 or width * height > max_pixels or step < width * BYTES_PER_PIXEL[encoding]:
        return BAD_SIZE
    if step * height > max_pixels * 8 or nbytes != step * height:
        return BAD_SIZE
    return VALID


RAW_MUTATIONS = ["none"] * 6 + ["encoding", "zero_size", "huge_size", "short_step", "absurd_step", "length", "empty"]


@st.composite
def raw_images(draw: Callable, hdr: Any, max_pixels: int) -> Sent:
    """``sensor_msgs/Image``: a valid image (any encoding, padded rows, either byte order, up to
    the largest accepted size), or one with a mutation: unknown encoding, empty or 2**31-wide
    size, short or absurd step, data of the wrong length, no data."""
    from sensor_msgs.msg import Image

    encoding = draw(st.sampled_from(sorted(BYTES_PER_PIXEL)))
    side = math.isqrt(max_pixels)
    width, height = draw(st.sampled_from([(side, side)]) if draw(st.integers(0, 19)) == 0
                         else st.tuples(st.integers(1, 64), st.integers(1, 64)))
    mutation = draw(st.sampled_from(RAW_MUTATIONS))
    if mutation == "encoding":
        encoding = draw(st.sampled_from(UNKNOWN_ENCODINGS))
    elif mutation == "zero_size":
        width, height = draw(st.sampled_from([(0, height), (width, 0), (0, 0)]))
    elif mutation == "huge_size":
        width, height = draw(st.integers(side + 1, 2**31)), draw(st.integers(side, 2**31))
    bpp = BYTES_PER_PIXEL.get(encoding, 3)
    step = width * bpp + draw(st.sampled_from([0, 0, 0, 1, 3, 64]))  # row padding is valid
    if mutation == "short_step":
        step = max(0, width * bpp - draw(st.integers(1, 8)))
    elif mutation == "absurd_step":
        step = 2**31
    step = min(step, UINT32_MAX)
    nbytes = step * height
    if mutation == "length":
        nbytes = max(0, nbytes + draw(st.sampled_from([-1, 1, -step, step, 1000])))
    elif mutation == "empty":
        nbytes = 0
    if nbytes > 4 * 2**20:  # never build huge buffers: a short one is just as wrong
        nbytes = draw(st.integers(0, 4096))
    msg = Image(header=hdr, encoding=encoding, width=width, height=height, step=step,
                is_bigendian=draw(st.sampled_from([0, 0, 1, 255])))
    msg.data = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 256, nbytes, np.uint8).tobytes()
    label = raw_image_label(encoding, width, height, step, nbytes, max_pixels)
    kind = "raw_valid" if label == VALID else f"raw_{label.removeprefix('image_')}"
    return Sent("image", kind, msg, frozenset([label]), (width, height))


# ---------------------------------------------------------------------------------------- compressed images
CODECS = {  # name -> (extension, imencode parameters)
    "jpeg": (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 80]),
    "jpeg_progressive": (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
    "png": (".png", []),
    "bmp": (".bmp", []),
    "webp": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),
    "webp_lossless": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
}
OTHER_FORMATS = (".tiff", ".gif", ".ppm", ".jp2", ".hdr", ".ras", ".pfm")  # OpenCV reads them; the node refuses them


def encode(ext: str, image: np.ndarray, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, image, params or [])
    assert ok, ext
    return buf.tobytes()


@functools.lru_cache(maxsize=None)
def other_formats() -> tuple[bytes, ...]:
    """A small image in each of :data:`OTHER_FORMATS`."""
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), np.uint8)
    return tuple(encode(ext, image.astype(np.float32) if ext == ".pfm" else image) for ext in OTHER_FORMATS)


@functools.lru_cache(maxsize=None)
def bombs(max_pixels: int) -> tuple[tuple[str, bytes, str], ...]:
    """Small files declaring many pixels: (name, data, label). 2048x2048 is above the fuzz node's
    limit; the square at the limit is accepted (it costs what the limit allows)."""
    big = np.zeros((2048, 2048, 3), np.uint8)
    side = math.isqrt(max_pixels)
    at_limit = np.zeros((side, side, 3), np.uint8)
    return (
        ("png_2048", encode(".png", big), BAD_SIZE),
        ("jpeg_2048", encode(".jpg", big), BAD_SIZE),
        ("webp_2048", encode(".webp", big, [cv2.IMWRITE_WEBP_QUALITY, 101]), BAD_SIZE),
        ("png_at_limit", encode(".png", at_limit), VALID),
        ("jpeg_at_limit", encode(".jpg", at_limit), VALID),
    )


def forge_size(data: bytes, codec: str, width: int, height: int) -> bytes:
    """``data`` with the size in its header replaced (checksums fixed where the format has them)."""
    out = bytearray(data)
    if codec == "png":
        out[16:24] = struct.pack(">II", width, height)
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    elif codec.startswith("jpeg"):
        sof = next(i for i in range(2, len(out) - 1) if out[i] == 0xFF and out[i + 1] in (0xC0, 0xC2))
        out[sof + 5:sof + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
    elif codec == "bmp":
        out[18:26] = struct.pack("<ii", min(width, 2**31 - 1), min(height, 2**31 - 1))
    elif codec == "webp" and out[12:16] == b"VP8 ":
        out[26:30] = struct.pack("<HH", width & 0x3FFF, height & 0x3FFF)
    elif out[12:16] == b"VP8L":
        bits = int.from_bytes(out[21:25], "little") & ~((1 << 28) - 1)
        out[21:25] = (bits | ((width - 1) & 0x3FFF) | (((height - 1) & 0x3FFF) << 14)).to_bytes(4, "little")
    return bytes(out)


def declared(codec: str, width: int, height: int) -> tuple[int, int]:
    """What :func:`forge_size` can write for ``codec`` (field widths)."""
    if codec.startswith("jpeg"):
        return width & 0xFFFF, height & 0xFFFF
    if codec.startswith("webp"):
        return ((width - 1) & 0x3FFF) + 1 if codec == "webp_lossless" else width & 0x3FFF, \
            ((height - 1) & 0x3FFF) + 1 if codec == "webp_lossless" else height & 0x3FFF
    return width, height


@st.composite
def compressed_images(draw: Callable, hdr: Any, max_pixels: int) -> Sent:
    """``sensor_msgs/CompressedImage``: valid JPEG/PNG/BMP/WebP, headers forged to huge or other small
    sizes (checksums fixed), truncated streams, decompression bombs, other formats, garbage."""
    from sensor_msgs.msg import CompressedImage

    kind = draw(st.sampled_from(["valid", "valid", "valid", "forged_huge", "forged_small", "truncated", "bomb",
                                 "other_format", "garbage", "empty", "bad_checksum"]))
    codec = draw(st.sampled_from(sorted(CODECS)))
    width, height = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (height, width) if draw(st.booleans()) else (height, width, 3)
    image = rng.integers(0, 256, shape, np.uint8)
    ext, params = CODECS[codec]
    data, outcomes, size = encode(ext, image, params), {VALID}, (width, height)
    if kind == "forged_huge":
        side = draw(st.sampled_from([2048, 16383, 65500, 100_000]))
        data = forge_size(data, codec, side, side)
        dw, dh = declared(codec, side, side)
        outcomes = {BAD_SIZE} if dw * dh > max_pixels else {DECODE_FAILED, BAD_SIZE}
    elif kind == "forged_small":
        fw, fh = draw(st.integers(1, 64)), draw(st.integers(1, 64))
        data = forge_size(data, codec, fw, fh)
        size, outcomes = declared(codec, fw, fh), {VALID, DECODE_FAILED}  # valid only at the declared size
    elif kind == "truncated":
        data = data[: draw(st.integers(0, len(data) - 1))]
        outcomes = {DECODE_FAILED} if codec.startswith("jpeg") else {VALID, DECODE_FAILED}
    elif kind == "bomb":
        name, data, label = draw(st.sampled_from(bombs(max_pixels)))
        side = math.isqrt(max_pixels)
        codec, outcomes, size = name, {label}, (side, side)
    elif kind == "other_format":
        data, outcomes = draw(st.sampled_from(other_formats())), {DECODE_FAILED}
    elif kind == "garbage":
        data = rng.integers(0, 256, draw(st.integers(1, 3000)), np.uint8).tobytes()
        outcomes = {DECODE_FAILED, BAD_SIZE}  # (random bytes may start like a BMP or WebP header)
    elif kind == "empty":
        data, outcomes = b"", {DECODE_FAILED}
    elif kind == "bad_checksum":
        codec = "png"
        data = bytearray(encode(".png", image))
        data[16:20] = struct.pack(">I", width + 1)  # IHDR changed, its CRC not
        data, outcomes = bytes(data), {DECODE_FAILED}
    msg = CompressedImage(header=hdr, format=draw(st.sampled_from(["jpeg", "png", "", "rgb8; jpeg compressed bgr8"])))
    msg.data = data
    return Sent("image/compressed", f"compressed_{kind}", msg, frozenset(outcomes), size)


# ---------------------------------------------------------------------------------------- detections
BAD_VALUES = [math.nan, math.inf, -math.inf, -5.0, 0.0, 1e30, -1e30, 1e-9]


@st.composite
def boxes(draw: Callable, size_wh: tuple[int, int]) -> list[tuple[float, float, float, float, float, int]]:
    """(cx, cy, w, h, score, track_id) rows: mostly inside the image, a quarter with one field
    NaN/inf/negative/huge, extreme and duplicate ids, sometimes hundreds (numpy from a drawn seed,
    so that hundreds of boxes cost hypothesis one draw)."""
    width, height = max(size_wh[0], 1), max(size_wh[1], 1)
    n = draw(st.integers(100, 300) if draw(st.integers(0, 9)) == 0 else st.integers(0, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = rng.uniform(1.0, width * 1.5, n)
    h = rng.uniform(1.0, height * 1.5, n)
    rows = np.stack([rng.uniform(-w, width + w), rng.uniform(-h, height + h), w, h, rng.uniform(0, 1, n)], axis=1)
    bad = rng.random(n) < 0.25
    rows[bad, rng.integers(0, 5, n)[bad]] = rng.choice(BAD_VALUES, int(bad.sum()))
    ids = rng.choice([-1, -1, -1, 0, 1, 2, 3, 2**31 - 1, -(2**31)], n)
    return [(*map(float, row), int(tid)) for row, tid in zip(rows, ids)]


def person_detections(hdr: Any, rows: list[tuple]) -> Sent:
    from tdmi_msgs.msg import BoundingBox2D, PersonDetection, PersonDetectionArray

    msg = PersonDetectionArray(header=hdr)
    msg.detections = [
        PersonDetection(box=BoundingBox2D(center_x=float(cx), center_y=float(cy), size_x=float(w), size_y=float(h)),
                        score=float(s), track_id=int(tid))
        for cx, cy, w, h, s, tid in rows
    ]
    return Sent("detections", "detections_many" if len(rows) >= 100 else "detections", msg)


def vision_detections(hdr: Any, rows: list[tuple], class_id: str = "person") -> Sent:
    """The same rows as ``vision_msgs/Detection2DArray`` (only when vision_msgs is installed)."""
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    msg = Detection2DArray(header=hdr)
    for cx, cy, w, h, s, tid in rows:
        det = Detection2D(header=hdr, id=str(tid))
        det.bbox.center.position.x, det.bbox.center.position.y = float(cx), float(cy)
        det.bbox.size_x, det.bbox.size_y = float(w), float(h)
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = class_id, float(s)
        det.results = [hyp]
        msg.detections.append(det)
    return Sent("detections", "vision_detections", msg)


# ---------------------------------------------------------------------------------------- batches
@st.composite
def batches(draw: Callable, start_ns: int, transport: str, max_pixels: int, max_size: int = 25,
            detections: Callable[[Any, list[tuple]], Sent] = person_detections) -> Batch:
    """A burst of frames and lone messages, stamps following :data:`STAMP_MOVES` from ``start_ns``."""
    images = compressed_images if transport == "compressed" else raw_images
    batch, t = Batch(), start_ns
    for _ in range(draw(st.integers(1, max_size))):
        move, u = draw(stamp_moves())
        t = STAMP_MOVES[move](t, u)
        stamp = make_stamp(t, nanosec_overflow=draw(st.integers(0, 20)) == 0)
        frame_id = draw(st.sampled_from(["cam"] * 8 + ["", "other_cam"]))
        what = draw(st.sampled_from(["frame"] * 6 + ["image", "detections"]))
        image = draw(images(header(stamp, frame_id), max_pixels)) if what != "detections" else None
        group = [image] if image is not None else []
        if what != "image" and draw(st.integers(0, 6)) > 0:  # frames sometimes lack detections
            size = image.size_wh if image is not None else (64, 48)
            det_frame = frame_id if draw(st.integers(0, 9)) else draw(st.sampled_from(["", "other_cam", "cam2"]))
            group.append(detections(header(stamp, det_frame), draw(boxes(size))))
            if draw(st.integers(0, 9)) == 0:  # a decoy: a second array for the same stamp
                group.append(detections(header(stamp, det_frame), draw(boxes(size))))
        if draw(st.booleans()):
            group.reverse()  # detections first
        batch.messages += group
    return batch
