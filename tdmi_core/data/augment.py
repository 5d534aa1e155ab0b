"""Window augmentation of the paper family, drawn once per window and applied to every frame.

Rotation (clipped Gaussian, +-45 deg, p = 0.6), scale (clipped Gaussian around 1, 0.65-1.35), half-body
(p = 0.3, when more than 8 joints are labelled) and horizontal flip (p = 0.5) with the left/right joint
swap. The flip is folded into the crop affine (one ``warpAffine`` per frame, no flipped image copies):
``M = crop(center', scale, rot) @ F`` with ``F: x -> (W - 1) - x`` and ``center'`` the mirrored centre, the
same as flipping the image first as HRNet / DCPose do.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tdmi_core.geometry import box_to_center_scale, get_affine
from tdmi_core.skeleton import POSETRACK_KEYPOINT_NAMES

# Joints of the upper body for the half-body crop, by 17-slot position (head, arms); the rest is lower body.
UPPER_BODY_SLOTS: tuple[int, ...] = tuple(range(11))
HALF_BODY_PADDING = 1.5  # HRNet / DCPose enlarge the half-body box by 1.5


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (defaults: the paper / DCPose family)."""

    rotation_std_deg: float = 45.0
    rotation_max_deg: float = 45.0
    rotation_prob: float = 0.6
    scale_std: float = 0.35
    scale_min: float = 0.65
    scale_max: float = 1.35
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    flip_prob: float = 0.5

    def __post_init__(self) -> None:
        for name in ("rotation_prob", "half_body_prob", "flip_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1], got {value}")
        if not 0 < self.scale_min <= 1.0 <= self.scale_max:
            raise ValueError(f"augment scale range must satisfy 0 < scale_min <= 1 <= scale_max, got {self.scale_min}..{self.scale_max}")
        if self.rotation_max_deg < 0 or self.rotation_std_deg < 0 or self.scale_std < 0:
            raise ValueError("augment rotation_max_deg, rotation_std_deg and scale_std must be >= 0")


def flip_permutation_for(names: tuple[str, ...]) -> np.ndarray:
    """Joint permutation of a horizontal flip, derived from the ``left_*`` / ``right_*`` names.

    PoseTrack's slots 1/2 are head_bottom/head_top (not a left/right pair), COCO's are the eyes: the
    names decide, so one rule serves both label sets.
    """
    index = {n: i for i, n in enumerate(names)}
    perm = np.arange(len(names))
    for i, n in enumerate(names):
        for a, b in (("left_", "right_"), ("right_", "left_")):
            if n.startswith(a) and n.replace(a, b, 1) in index:
                perm[i] = index[n.replace(a, b, 1)]
    return perm


@dataclass(frozen=True)
class WindowTransform:
    """The crop of one window (the same for all its frames).

    Attributes:
        center: ``[2]`` crop centre in source pixels (after any flip: mirrored image coordinates).
        scale_wh: ``[2]`` crop region size in source pixels.
        rotation_deg: region rotation.
        flip: whether the window is mirrored.
        matrix: ``[2, 3]`` source-image -> crop affine, flip included.
        joint_permutation: ``[K]`` applied to joints after the flip (identity when not flipped).
    """

    center: np.ndarray
    scale_wh: np.ndarray
    rotation_deg: float
    flip: bool
    matrix: np.ndarray
    joint_permutation: np.ndarray


def half_body_box(keypoints: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Box ``[4]`` around the upper or lower body's labelled joints (``keypoints[K, 3]``), or None."""
    labelled = keypoints[:, 2] > 0
    upper = [k for k in range(len(keypoints)) if labelled[k] and k in UPPER_BODY_SLOTS]
    lower = [k for k in range(len(keypoints)) if labelled[k] and k not in UPPER_BODY_SLOTS]
    selected = upper if (rng.random() < 0.5 and len(upper) > 2) else (lower if len(lower) > 2 else upper)
    if len(selected) < 2:
        return None
    pts = keypoints[selected, :2]
    return np.concatenate([pts.min(axis=0), pts.max(axis=0)])


def make_window_transform(
    box_xyxy: np.ndarray,
    image_width: int,
    input_size_hw: tuple[int, int],
    padding: float = 1.25,
    keypoints: np.ndarray | None = None,
    config: AugmentConfig | None = None,
    rng: np.random.Generator | None = None,
    keypoint_names: tuple[str, ...] = POSETRACK_KEYPOINT_NAMES,
) -> WindowTransform:
    """Build the window's crop from the key-frame box, with augmentation when ``config`` is given.

    Args:
        box_xyxy: ``[4]`` key-frame person box in source pixels.
        image_width: Source image width (for the flip).
        input_size_hw: Model input (H, W).
        padding: Box enlargement (1.25 = 25 %).
        keypoints: ``[K, 3]`` key-frame keypoints (x, y, labelled), needed for the half-body crop.
        config: Augmentation; None = deterministic crop (validation / prediction).
        rng: Random generator (required with ``config``).
        keypoint_names: Names of the 17 slots, for the flip permutation.
    """
    in_h, in_w = input_size_hw
    aspect = in_w / in_h
    num_joints = len(keypoint_names)
    identity = np.arange(num_joints)
    if config is None:
        center, scale = box_to_center_scale(box_xyxy, aspect, padding)
        return WindowTransform(center, scale, 0.0, False, get_affine(center, scale, 0.0, (in_w, in_h)), identity)
    if rng is None:
        raise ValueError("make_window_transform: an rng is required when augmenting")

    center, scale = box_to_center_scale(box_xyxy, aspect, padding)
    if (keypoints is not None and int((keypoints[:, 2] > 0).sum()) > config.half_body_min_joints
            and rng.random() < config.half_body_prob):
        hb = half_body_box(keypoints, rng)
        if hb is not None:
            center, scale = box_to_center_scale(hb, aspect, HALF_BODY_PADDING)
    factor = float(np.clip(rng.standard_normal() * config.scale_std + 1.0, config.scale_min, config.scale_max))
    scale = scale * factor
    rotation = 0.0
    if rng.random() < config.rotation_prob:
        rotation = float(np.clip(rng.standard_normal() * config.rotation_std_deg,
                                 -config.rotation_max_deg, config.rotation_max_deg))
    flip = bool(rng.random() < config.flip_prob)
    perm = identity
    if flip:
        center = np.array([image_width - 1 - center[0], center[1]])
        mirror = np.array([[-1.0, 0.0, image_width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        crop = get_affine(center, scale, rotation, (in_w, in_h))
        matrix = crop @ mirror
        perm = flip_permutation_for(keypoint_names)
    else:
        matrix = get_affine(center, scale, rotation, (in_w, in_h))
    return WindowTransform(center, scale, rotation, flip, matrix, perm)


# ------------------------------------------------------------------------------------------------
# Key-frame degradations: what a single frame can lose and its neighbours can give back.

DEGRADATIONS: tuple[str, ...] = ("occluder", "motion_blur")


def add_occluder(image: np.ndarray, rng: np.random.Generator, area_range: tuple[float, float] = (0.08, 0.25)) -> np.ndarray:
    """A copy of ``image`` with one random rectangle of flat colour plus noise over part of it.

    The rectangle covers ``area_range`` of the image with an aspect between 1:3 and 3:1, anywhere in the
    central 80 % (where the person is in a crop).
    """
    h, w = image.shape[:2]
    area = rng.uniform(*area_range) * h * w
    aspect = np.exp(rng.uniform(np.log(1 / 3), np.log(3)))
    oh = int(np.clip(np.sqrt(area * aspect), 2, h))
    ow = int(np.clip(area / max(oh, 1), 2, w))
    cy = rng.uniform(0.1 * h, 0.9 * h)
    cx = rng.uniform(0.1 * w, 0.9 * w)
    y0, x0 = int(np.clip(cy - oh / 2, 0, h - oh)), int(np.clip(cx - ow / 2, 0, w - ow))
    out = image.copy()
    colour = rng.integers(0, 256, size=image.shape[2:] or (1,), dtype=np.int64)
    noise = rng.normal(0.0, 12.0, size=(oh, ow) + image.shape[2:])
    out[y0 : y0 + oh, x0 : x0 + ow] = np.clip(colour + noise, 0, 255).astype(image.dtype)
    return out


def add_motion_blur(image: np.ndarray, rng: np.random.Generator, length_fraction: tuple[float, float] = (0.04, 0.1)) -> np.ndarray:
    """A copy of ``image`` blurred along a random direction over ``length_fraction`` of its height."""
    import cv2

    length = max(3, int(round(rng.uniform(*length_fraction) * image.shape[0])) | 1)
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rotation = cv2.getRotationMatrix2D(((length - 1) / 2.0, (length - 1) / 2.0), float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    kernel /= max(float(kernel.sum()), 1e-6)
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)


def degrade(image: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """One key-frame degradation (``kind`` from :data:`DEGRADATIONS`, random when None)."""
    kind = kind or DEGRADATIONS[int(rng.integers(len(DEGRADATIONS)))]
    if kind == "occluder":
        return add_occluder(image, rng)
    if kind == "motion_blur":
        return add_motion_blur(image, rng)
    raise ValueError(f"unknown degradation {kind!r}; choose from {DEGRADATIONS}")
