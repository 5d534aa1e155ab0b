"""Video frames for the programs: one reader for every tool that walks a video file."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["read_frames"]


def read_frames(path: str | Path, start: int = 0, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """The frames of a video file, ``[H, W, 3]`` uint8 BGR, from frame ``start``, at most ``max_frames``.

    Raises:
        FileNotFoundError: the file cannot be opened.
    """
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open video {path}")
    try:
        for _ in range(start):
            if not cap.grab():
                return
        count = 0
        while max_frames is None or count < max_frames:
            ok, frame = cap.read()
            if not ok:
                return
            count += 1
            yield frame
    finally:
        cap.release()
