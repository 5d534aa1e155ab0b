"""What a TDMI model input is made of, shared by training (``tdmi_core.data``) and serving (``tdmi_core.runtime``).

- Which frames: :func:`window_frames` for a window kind (:data:`WINDOWS`): the symmetric window
  ``[t - delta, ..., t + delta]`` with the paper family's padding at sequence ends
  (:func:`window_frame_indices`), the causal window ``[t - 2 delta, ..., t]`` without look-ahead
  (:func:`causal_window_frame_indices`), or a single-frame model's window (the key frame repeated);
  :func:`window_span` says how far before and after the key frame a window reaches.
- How pixels are scaled: crops are RGB, normalised with the ImageNet mean and standard deviation
  below (what HRNet was pretrained with): :func:`pixel_normalization` gives the exact float32
  constants both sides apply to 0..255 pixels, so their inputs agree bit for bit.

Both sides import these, so a training window and a served window can never be built differently.
"""
from __future__ import annotations

import numpy as np

__all__ = ["IMAGENET_MEAN_RGB", "IMAGENET_STD_RGB", "WINDOWS", "causal_window_frame_indices", "pixel_normalization",
           "window_frame_indices", "window_frames", "window_span"]

# Window kinds: a model config's ``window`` (symmetric | causal), or a single-frame twin's (key frame repeated).
WINDOWS: tuple[str, ...] = ("symmetric", "causal", "single_frame")

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


def window_span(window: str, delta: int) -> tuple[int, int]:
    """``(frames before, frames after)`` the key frame that a ``window`` of span ``delta`` reaches.

    The frames after are the look-ahead: a stream can emit key frame ``t`` once frame ``t + after`` is in.
    """
    spans = {"symmetric": (delta, delta), "causal": (2 * delta, 0), "single_frame": (0, 0)}
    if window not in spans:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
    return spans[window]


def window_frames(window: str, key_index: int, num_frames: int, delta: int) -> list[int]:
    """The ``2 * delta + 1`` frame indices of key frame ``key_index``'s window of kind ``window`` (time order).

    ``"symmetric"``: :func:`window_frame_indices`; ``"causal"``: :func:`causal_window_frame_indices`;
    ``"single_frame"``: the key frame repeated (a single-frame twin sees nothing else, as in its training).
    Training and serving both build windows through this function.
    """
    if window == "symmetric":
        return window_frame_indices(key_index, num_frames, delta)
    if window == "causal":
        return causal_window_frame_indices(key_index, num_frames, delta)
    if window == "single_frame":
        if delta < 0:
            raise ValueError(f"delta must be >= 0, got {delta}")
        if not 0 <= key_index < num_frames:
            raise ValueError(f"key frame {key_index} outside the {num_frames} available frames")
        return [key_index] * (2 * delta + 1)
    raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
