"""Window indices and the DCPose-family padding rule."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tdmi_core.data.windows import window_frame_indices


def test_interior_window() -> None:
    assert window_frame_indices(5, 10, 2) == [3, 4, 5, 6, 7]


def test_start_pads_earlier_frames_with_the_key_frame() -> None:
    assert window_frame_indices(0, 10, 2) == [0, 0, 0, 1, 2]
    assert window_frame_indices(1, 10, 2) == [1, 0, 1, 2, 3]


def test_end_pads_later_frames_with_t_plus_1_else_key() -> None:
    assert window_frame_indices(8, 10, 2) == [6, 7, 8, 9, 9]  # t+2 missing -> t+1
    assert window_frame_indices(9, 10, 2) == [7, 8, 9, 9, 9]  # nothing later -> key frame
    assert window_frame_indices(0, 1, 2) == [0, 0, 0, 0, 0]


def test_errors() -> None:
    with pytest.raises(ValueError, match="outside"):
        window_frame_indices(10, 10, 2)
    with pytest.raises(ValueError, match="delta"):
        window_frame_indices(0, 10, -1)


@given(st.integers(1, 40), st.integers(0, 4), st.data())
def test_window_properties(num_frames: int, delta: int, data) -> None:
    key = data.draw(st.integers(0, num_frames - 1))
    ids = window_frame_indices(key, num_frames, delta)
    assert len(ids) == 2 * delta + 1 and ids[delta] == key
    assert all(0 <= i < num_frames for i in ids)
    assert all(i <= key for i in ids[:delta]) and all(i >= key for i in ids[delta + 1:])
    for offset, index in zip(range(-delta, delta + 1), ids):
        if 0 <= key + offset < num_frames:
            assert index == key + offset  # frames that exist are used as they are
        elif offset < 0:
            assert index == key  # missing earlier frame -> key frame
        else:
            assert index == max(num_frames - 1, key)  # missing later frame -> last later frame, else key
