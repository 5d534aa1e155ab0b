"""Temporal windows of 2*delta + 1 frames around a key frame, with the DCPose-family padding rule."""
from __future__ import annotations


def window_frame_indices(key_index: int, num_frames: int, delta: int) -> list[int]:
    """Frame indices of the window ``[t - delta, ..., t, ..., t + delta]`` (time order, key at ``delta``).

    Padding at the sequence ends (the DCPose-family rule): a missing earlier frame is replaced by the
    key frame; a missing later frame by the latest frame that exists after the key frame (for delta = 2:
    t + 1 if it exists), otherwise by the key frame.

    Args:
        key_index: Index t of the key frame, ``0 <= t < num_frames``.
        num_frames: Frames in the video.
        delta: Frames on each side (>= 0).

    Returns:
        ``2 * delta + 1`` valid frame indices.
    """
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    if not 0 <= key_index < num_frames:
        raise ValueError(f"key_index {key_index} outside the video's {num_frames} frames")
    out = []
    for offset in range(-delta, delta + 1):
        index = key_index + offset
        if index < 0:
            index = key_index
        elif index >= num_frames:
            index = num_frames - 1  # the last later frame that exists (the key frame if t is last)
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
        raise ValueError(f"key_index {key_index} outside the video's {num_frames} frames")
    return [max(0, key_index + offset) for offset in range(-2 * delta, 1)]
