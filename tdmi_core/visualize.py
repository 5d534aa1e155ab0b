"""Drawing skeletons on images (overlays for the demo, /poses/image and docs).

One place for colours and drawing so every picture of the project looks the same.
"""
from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

from tdmi_core.skeleton import LIMBS


def track_color_rgb(track_id: int) -> tuple[float, float, float]:
    """A stable, well-separated colour per track id (golden-ratio hue walk), RGB in [0, 1]."""
    hue = (int(track_id) * 0.618033988749895) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.85, 0.95)


def track_color_bgr(track_id: int) -> tuple[int, int, int]:
    """:func:`track_color_rgb` as an OpenCV BGR colour, 0..255."""
    r, g, b = track_color_rgb(track_id)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_skeleton(
    image_bgr: np.ndarray,
    keypoints: np.ndarray,
    track_id: int,
    box_xyxy: Sequence[float] | None = None,
    min_score: float = 0.2,
    thickness: int = 2,
) -> np.ndarray:
    """Draw one person in place and return the image.

    Args:
        image_bgr: [H, W, 3] uint8 image, modified in place.
        keypoints: [17, 3] (x_px, y_px, score); joints under ``min_score`` are not drawn.
        track_id: colours the person and labels the box.
        box_xyxy: optional person box (x1, y1, x2, y2) in pixels.
    """
    color = track_color_bgr(track_id)
    scale = max(1, round(max(image_bgr.shape[:2]) / 800))
    width = thickness * scale
    visible = np.isfinite(keypoints).all(axis=1) & (keypoints[:, 2] >= min_score)
    points = [(int(round(x)), int(round(y))) if ok else (0, 0) for (x, y), ok in zip(keypoints[:, :2], visible)]
    for a, b in LIMBS:
        if visible[a] and visible[b]:
            cv2.line(image_bgr, points[a], points[b], color, width, cv2.LINE_AA)
    for point, ok in zip(points, visible):
        if ok:
            cv2.circle(image_bgr, point, 2 * width, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(image_bgr, point, 2 * width, color, max(1, width // 2), cv2.LINE_AA)
    if box_xyxy is not None and np.isfinite(box_xyxy).all():
        x1, y1, x2, y2 = (int(round(v)) for v in box_xyxy)
        cv2.rectangle(image_bgr, (x1, y1), (x2, y2), color, max(1, width // 2))
        cv2.putText(image_bgr, f"id {track_id}", (x1, max(0, y1 - 6 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.6 * scale, color, width, cv2.LINE_AA)
    return image_bgr
