"""Compressed images are sized from their headers before any decoding (tdmi_ros.image_headers), and
compressed_to_bgr either returns exactly the declared image or raises InputError."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage

from tdmi_ros import DECODER_MAX_PIXELS
from tdmi_ros.conversions import InputError, compressed_to_bgr, max_image_bytes
from tdmi_ros.image_headers import MAX_JPEG_SCANS, HeaderError, read_header

ENCODINGS = {  # name -> (extension, imencode parameters)
    "jpeg": (".jpg", []),
    "jpeg_progressive": (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
    "png": (".png", []),
    "bmp": (".bmp", []),
    "webp_lossy": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),
    "webp_lossless": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
}


def encode(kind: str, width: int, height: int, channels: int = 3, seed: int = 0) -> bytes:
    ext, params = ENCODINGS[kind]
    shape = (height, width, channels) if channels > 1 else (height, width)
    image = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    ok, buf = cv2.imencode(ext, image, params)
    assert ok
    return buf.tobytes()


def msg_of(data: bytes, fmt: str = "") -> CompressedImage:
    msg = CompressedImage(format=fmt)
    msg.data = data
    return msg


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(sorted(ENCODINGS)), width=st.integers(1, 300), height=st.integers(1, 300),
       gray=st.booleans())
def test_header_size_is_the_decoded_size(kind, width, height, gray):
    data = encode(kind, width, height, 1 if gray else 3)
    header = read_header(data)
    assert (header.width, header.height) == (width, height)
    assert compressed_to_bgr(msg_of(data)).shape == (height, width, 3)


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(sorted(ENCODINGS)), cut=st.floats(0.0, 0.999))
def test_truncated_streams_are_refused_or_exact(kind, cut):
    """Any prefix either decodes to the declared size or is refused with a reason; never a crash."""
    data = encode(kind, 48, 32, seed=1)
    prefix = data[: int(len(data) * cut)]
    try:
        image = compressed_to_bgr(msg_of(prefix))
    except InputError as e:
        assert e.reason in ("decode_failed", "bad_size")
    else:  # (BMP, WebP: a decoder may fill what is missing; the size is still the declared one)
        assert image.shape == (32, 48, 3) and kind in ("bmp", "webp_lossy", "webp_lossless", "png")


def forge_png(width: int, height: int, fix_crc: bool = True) -> bytes:
    data = bytearray(encode("png", 8, 8))
    data[16:24] = struct.pack(">II", width, height)
    if fix_crc:
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def forge_jpeg(width: int, height: int) -> bytes:
    data = bytearray(encode("jpeg", 8, 8))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize(("data", "declared"), [
    (forge_png(65535, 65535), (65535, 65535)),
    (forge_jpeg(65500, 65500), (65500, 65500)),
    (b"BM" + bytes(12) + struct.pack("<Iii", 40, 100_000, -100_000), (100_000, 100_000)),
    (b"BM" + bytes(12) + struct.pack("<IHH", 12, 65535, 65535) + bytes(4), (65535, 65535)),
    (b"RIFF\0\0\0\0WEBPVP8X" + bytes(8) + (2**24 - 1).to_bytes(3, "little") * 2, (2**24, 2**24)),
])
def test_forged_headers_declaring_huge_images_are_refused_before_decoding(data, declared):
    assert (read_header(data).width, read_header(data).height) == declared
    with pytest.raises(InputError) as e:
        compressed_to_bgr(msg_of(data), max_pixels=4096 * 4096)
    assert e.value.reason == "bad_size"


@pytest.mark.parametrize("data", [
    forge_png(40, 40, fix_crc=False),  # IHDR checksum no longer matches
    forge_jpeg(0, 8),  # empty
    b"\xff\xd8\xff\xc0\x00\x11" + bytes(20),  # frame header cut short, no scan
    encode("jpeg", 16, 16).replace(b"\xff\xc0", b"\xff\xc1", 1)[:-2],  # no end-of-image marker
    b"\x89PNG\r\n\x1a\n" + bytes(10),
    b"II*\x00" + bytes(100),  # TIFF: not accepted
    b"GIF89a" + bytes(100),
    b"P6\n4 4\n255\n" + bytes(48),
    b"",
    bytes(range(256)),
])
def test_unreadable_or_refused_streams_are_decode_failed_or_empty(data):
    with pytest.raises(InputError) as e:
        compressed_to_bgr(msg_of(data))
    assert e.value.reason in ("decode_failed", "bad_size")


def test_a_jpeg_with_too_many_scans_is_refused():
    data = encode("jpeg", 16, 16)
    eoi = data.rindex(b"\xff\xd9")
    scan = data[data.index(b"\xff\xda"):eoi]
    with pytest.raises(HeaderError, match="scans"):
        read_header(data[:eoi] + scan * MAX_JPEG_SCANS + b"\xff\xd9")


def test_data_beyond_the_byte_bound_is_refused_unread():
    with pytest.raises(InputError) as e:
        compressed_to_bgr(msg_of(encode("png", 8, 8) + bytes(max_image_bytes(64))), max_pixels=64)
    assert e.value.reason == "bad_size"


def test_exif_orientation_is_ignored_as_image_transport_does():
    """A JPEG tagged 'rotate 90' keeps its stored pixel grid (boxes refer to it)."""
    exif = b"Exif\x00\x00II*\x00" + struct.pack("<IHHHII", 8, 1, 0x0112, 3, 1, 6) + bytes(4)
    data = encode("jpeg", 40, 20)
    data = data[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + data[2:]
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == (40, 20, 3)  # OpenCV turns it
    assert compressed_to_bgr(msg_of(data)).shape == (20, 40, 3)


def test_the_decoder_itself_is_bounded_when_tdmi_ros_is_imported_first(repo_root):
    """Second line of defence: OpenCV refuses on its own what passes the header check."""
    code = (
        "import numpy as np, tdmi_ros, cv2\n"
        "from sensor_msgs.msg import CompressedImage\n"
        "from tdmi_ros.conversions import InputError, compressed_to_bgr\n"
        "m = CompressedImage(); m.data = cv2.imencode('.png', np.zeros((100, 100, 3), np.uint8))[1].tobytes()\n"
        "try:\n"
        "    compressed_to_bgr(m, max_pixels=10**6)\n"
        "except InputError as e:\n"
        "    print(e.reason, e)\n"
    )
    env = dict(os.environ, OPENCV_IO_MAX_IMAGE_PIXELS="1000", PYTHONPATH=str(repo_root))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("decode_failed") and "CV_IO_MAX_IMAGE_PIXELS" in out.stdout, out
    env.pop("OPENCV_IO_MAX_IMAGE_PIXELS")
    out = subprocess.run([sys.executable, "-c", "import tdmi_ros, os; print(os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'])"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == str(DECODER_MAX_PIXELS), out
