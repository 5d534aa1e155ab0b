"""Read the declared size of a compressed image from its header, before anything is decoded.

A few bytes can declare a 65535x65535 PNG: asking the decoder to find out means allocating (or
refusing inside OpenCV with an exception). :func:`read_header` reads only the header of the formats
the node accepts (JPEG, PNG, BMP, WebP) and refuses everything else, so the caller can check the
size first and decode only what it accepted.

The parsers are deliberately stricter than the decoders: anything they cannot follow exactly
(a broken marker chain, a truncated header, a second frame header) is refused rather than guessed,
so a header that passes names the size the decoder will allocate. Hand-written rather than Pillow's
lazy ``Image.open``: that carries its own process-wide decompression-bomb limit and warnings, and
would add a dependency for ~100 lines of header reading.

Not accepted: TIFF (its tile and strip buffers are sized by tags that a pixel count does not
bound), GIF, JPEG 2000, AVIF, PNM, HDR and the other formats OpenCV could decode.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

MAX_JPEG_SCANS = 100  # progressive JPEGs use ~10; thousands of scans make a tiny file a CPU bomb
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (not DHT, JPG, DAC)
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])  # TEM, RSTn: markers without a length
_JPEG_SCAN_OR_END = re.compile(rb"\xff[\xd9\xda]")  # EOI, SOS (entropy-coded data never holds these)


class HeaderError(ValueError):
    """The data is not a complete header of an accepted format (unknown, truncated or forged)."""


@dataclass(frozen=True)
class ImageHeader:
    """What a header declares: ``format`` (jpeg, png, bmp, webp) and the size in pixels."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(data: Any) -> ImageHeader:
    """Declared format and size of a compressed image (``bytes``, ``array('B')``, memoryview...).

    Raises:
        HeaderError: not JPEG/PNG/BMP/WebP, or a header that is truncated, inconsistent or
            (JPEG) a stream without its end marker or with more than :data:`MAX_JPEG_SCANS` scans.
    """
    view = memoryview(data).cast("B")
    head = bytes(view[:16])
    if head.startswith(b"\xff\xd8"):
        return _jpeg(view)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(view)
    if head.startswith(b"BM"):
        return _bmp(view)
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _webp(view)
    raise HeaderError(f"not a JPEG, PNG, BMP or WebP stream (starts with {head[:8]!r})")


def _need(view: memoryview, end: int, what: str) -> bytes:
    if len(view) < end:
        raise HeaderError(f"truncated {what} header: {len(view)} bytes, need {end}")
    return bytes(view[:end])


def _u16be(b: bytes, i: int) -> int:
    return int.from_bytes(b[i:i + 2], "big")


def _png(view: memoryview) -> ImageHeader:
    # signature, then the IHDR chunk: length 13, type, width, height (big-endian), ..., CRC
    b = _need(view, 33, "PNG")
    if b[8:16] != b"\x00\x00\x00\x0dIHDR":
        raise HeaderError("PNG does not start with a 13-byte IHDR chunk")
    if zlib.crc32(b[12:29]) != int.from_bytes(b[29:33], "big"):
        raise HeaderError("PNG IHDR checksum does not match (forged or corrupt header)")
    return ImageHeader("png", int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big"))


def _bmp(view: memoryview) -> ImageHeader:
    # 14-byte file header, then the DIB header: its size says which layout follows
    b = _need(view, 26, "BMP")
    dib_size = int.from_bytes(b[14:18], "little")
    if dib_size == 12:  # BITMAPCOREHEADER: 16-bit unsigned sizes
        return ImageHeader("bmp", int.from_bytes(b[18:20], "little"), int.from_bytes(b[20:22], "little"))
    if dib_size < 40:
        raise HeaderError(f"BMP header size {dib_size} is not a known layout")
    width = int.from_bytes(b[18:22], "little", signed=True)
    height = int.from_bytes(b[22:26], "little", signed=True)  # negative = rows stored top-down
    return ImageHeader("bmp", width, abs(height))


def _webp(view: memoryview) -> ImageHeader:
    # RIFF container; the first chunk is VP8 (lossy), VP8L (lossless) or VP8X (extended: canvas size)
    b = _need(view, 30, "WebP")
    chunk = b[12:16]
    if chunk == b"VP8 ":
        if b[23:26] != b"\x9d\x01\x2a":
            raise HeaderError("WebP VP8 frame start code missing")
        return ImageHeader("webp", int.from_bytes(b[26:28], "little") & 0x3FFF,
                           int.from_bytes(b[28:30], "little") & 0x3FFF)
    if chunk == b"VP8L":
        if b[20] != 0x2F:
            raise HeaderError("WebP VP8L signature missing")
        bits = int.from_bytes(b[21:25], "little")
        return ImageHeader("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        return ImageHeader("webp", int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1)
    raise HeaderError(f"WebP starts with an unknown chunk {chunk!r}")


def _jpeg(view: memoryview) -> ImageHeader:
    # Walk the marker segments after SOI up to the first scan (SOS); exactly one frame header (SOFn)
    # must come before it. Fill bytes (0xFF 0xFF) are allowed, anything else off the chain is refused.
    size: tuple[int, int] | None = None
    i, n = 2, len(view)
    while True:
        if i + 4 > n:
            raise HeaderError("truncated JPEG header: no scan (SOS) found")
        if view[i] != 0xFF:
            raise HeaderError(f"JPEG marker expected at byte {i}")
        marker = view[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        if marker in (0xD8, 0xD9):
            raise HeaderError("JPEG image ends (or starts again) before its first scan")
        length = _u16be(bytes(view[i + 2:i + 4]), 0)
        if length < 2 or i + 2 + length > n:
            raise HeaderError(f"JPEG segment 0x{marker:02X} at byte {i} has a bad length {length}")
        if marker in _JPEG_SOF:
            if size is not None:
                raise HeaderError("JPEG has more than one frame header")
            if length < 8:
                raise HeaderError("JPEG frame header too short")
            seg = bytes(view[i + 4:i + 9])  # precision, height, width
            size = (_u16be(seg, 3), _u16be(seg, 1))
        elif marker == 0xDA:
            break
        i += 2 + length
    if size is None:
        raise HeaderError("JPEG scan before any frame header")
    scans, last_scan, last_end = 0, -1, -1
    for match in _JPEG_SCAN_OR_END.finditer(view):
        if match.group()[1] == 0xDA:
            scans, last_scan = scans + 1, match.start()
            if scans > MAX_JPEG_SCANS:
                raise HeaderError(f"JPEG has more than {MAX_JPEG_SCANS} scans")
        else:
            last_end = match.start()
    if last_end < last_scan:
        raise HeaderError("truncated JPEG: no end-of-image marker after the last scan")
    return ImageHeader("jpeg", *size)
