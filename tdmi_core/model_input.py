"""What a TDMI model input is made of, shared by training (``tdmi_core.data``) and serving (``tdmi_core.runtime``).

- Which frames: :func:`window_frame_indices`, the window ``[t - delta, ..., t + delta]`` with the
  paper family's padding at sequence ends, or :func:`causal_window_frame_indices`, the window
  ``[t - 2 delta, ..., t]`` without look-ahead.
- How pixels are scaled: crops are RGB, normalised with the ImageNet mean and standard deviation
  below (what HRNet was pretrained with): :func:`pixel_normalization` gives the exact float32
  constants both sides apply to 0..255 pixels, so their inputs agree bit for bit.

Both sides import these, so a training window and a served window can never be built differently.
"""
from __future__ import annotations

import numpy as np

__all__ = ["IMAGENET_MEAN_RGB", "IMAGENET_STD_RGB", "causal_window_frame_indices", "pixel_normalization",
           "window_frame_indices"]

# ImageNet normalisation (RGB order, inputs scaled to [0, 1]).
IMAGENET_MEAN_RGB: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB: tuple[float, float, float] = (0.229, 0.224, 0.225)


def pixel_normalization() -> tuple[np.ndarray, np.ndarray]:
    """``(shift[3], scale[3])`` float32, RGB: a crop's input is ``(pixel_0_255 - shift) * scale``."""
    shift = np.asarray(IMAGENET_MEAN_RGB, np.float32) * 255.0
    scale = 1.0 / (np.asarray(IMAGENET_STD_RGB, np.float32) * 255.0)
    return shift, scale


def window_frame_indices(key_index: int, num_frames: int, delta: int) -> list[int]:
    """Frame indices of the window ``[t - delta, ..., t, ..., t + delta]`` (time order, key at position ``delta``).

    Padding at the sequence ends follows the paper family (DCPose, TDMI): a missing earlier frame is
    replaced by the key frame ``t``; a missing later frame by ``t + 1`` if that frame exists,
    otherwise by the key frame. (So for delta = 3, key 5 of 8 frames: ``[2, 3, 4, 5, 6, 7, 6]``.)

    Args:
        key_index: index ``t`` of the key frame, ``0 <= t < num_frames``.
        num_frames: frames available (a training video's length; for a stream, the frames pushed so far).
        delta: frames on each side (>= 0).

    Returns:
        ``2 * delta + 1`` valid frame indices.
    """
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    if not 0 <= key_index < num_frames:
        raise ValueError(f"key frame {key_index} outside the {num_frames} available frames")
    later = key_index + 1 if key_index + 1 < num_frames else key_index
    out = []
    for offset in range(-delta, delta + 1):
        index = key_index + offset
        if index < 0:
            index = key_index
        elif index >= num_frames:
            index = later
        out.append(index)
    return out


def causal_window_frame_indices(key_index: int, num_frames: int, delta: int) -> list[int]:
    """Frame indices of the causal window ``[t - 2*delta, ..., t]`` (time order, key frame last).

    No look-ahead: the window ends at the key frame. Frames before the video's start are replaced by
    its first frame, so the window stays in time order (a key frame at t = 0 is repeated).
    """
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    if not 0 <= key_index < num_frames:
        raise ValueError(f"key frame {key_index} outside the {num_frames} available frames")
    return [max(0, key_index + offset) for offset in range(-2 * delta, 1)]
