"""Tests for tdmi_core.geometry: aspect fit, affine forward/inverse, crops."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tdmi_core.geometry import (
    box_to_center_scale,
    boxes_to_center_scale,
    center_scale_to_box,
    crop_affine_for_box,
    get_affine,
    invert_affine,
    transform_points,
    warp_crop,
)

finite = dict(allow_nan=False, allow_infinity=False)


def test_box_to_center_scale_grows_height_for_wide_box() -> None:
    center, scale = box_to_center_scale([10, 20, 110, 60], aspect_w_over_h=0.75, padding=1.0)
    np.testing.assert_allclose(center, [60, 40])
    np.testing.assert_allclose(scale, [100, 100 / 0.75])


def test_box_to_center_scale_grows_width_for_tall_box_and_pads() -> None:
    center, scale = box_to_center_scale([0, 0, 30, 200], aspect_w_over_h=0.75, padding=1.25)
    np.testing.assert_allclose(center, [15, 100])
    np.testing.assert_allclose(scale, [150 * 1.25, 200 * 1.25])
    np.testing.assert_allclose(scale[0] / scale[1], 0.75)


def test_degenerate_box_stays_invertible() -> None:
    center, scale = box_to_center_scale([5, 5, 5, 5], 0.75)
    assert np.all(scale > 0)
    invert_affine(get_affine(center, scale, 0.0, (288, 384)))


@pytest.mark.parametrize("bad", [[1, 2, 3], [10, 0, 0, 10], [0, 0, np.nan, 1]])
def test_bad_boxes_raise(bad: list) -> None:
    with pytest.raises(ValueError):
        box_to_center_scale(bad, 0.75)


def test_affine_maps_region_corners_to_crop_corners() -> None:
    center, scale = np.array([100.0, 50.0]), np.array([60.0, 80.0])
    m = get_affine(center, scale, 0.0, (288, 384))
    src = np.array([[70.0, 10.0], [130.0, 90.0], [100.0, 50.0]])
    np.testing.assert_allclose(transform_points(src, m), [[0, 0], [288, 384], [144, 192]], atol=1e-9)


def test_affine_matches_three_point_construction_with_rotation() -> None:
    # Reference built independently with cv2.getAffineTransform from three point pairs:
    # center ↔ out center, center + R(rot)(0, -h/2) ↔ out center + (0, -out_h/2), and the
    # perpendicular point (the mmpose get_warp_matrix construction).
    center, scale, rot, out = np.array([320.0, 240.0]), np.array([150.0, 200.0]), 30.0, (288, 384)
    r = math.radians(rot)
    rmat = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
    src_dir = rmat @ np.array([0.0, -scale[1] * 0.5])
    dst_dir = np.array([0.0, -out[1] * 0.5])
    src = np.stack([center, center + src_dir, center + src_dir + np.array([-src_dir[1], src_dir[0]])])
    dc = np.array(out, dtype=float) * 0.5
    dst = np.stack([dc, dc + dst_dir, dc + dst_dir + np.array([-dst_dir[1], dst_dir[0]])])
    ref = cv2.getAffineTransform(src.astype(np.float32), dst.astype(np.float32))
    np.testing.assert_allclose(get_affine(center, scale, rot, out), ref, atol=1e-4)


@settings(max_examples=200, deadline=None)
@given(
    cx=st.floats(-1e3, 3e3, **finite),
    cy=st.floats(-1e3, 3e3, **finite),
    sw=st.floats(1.0, 2e3, **finite),
    sh=st.floats(1.0, 2e3, **finite),
    rot=st.floats(-180, 180, **finite),
    out_w=st.integers(8, 512),
    out_h=st.integers(8, 512),
    pts=st.lists(st.tuples(st.floats(-2e3, 4e3, **finite), st.floats(-2e3, 4e3, **finite)), min_size=1, max_size=17),
)
def test_inverse_after_forward_is_identity(cx, cy, sw, sh, rot, out_w, out_h, pts) -> None:
    fwd = get_affine((cx, cy), (sw, sh), rot, (out_w, out_h))
    inv = get_affine((cx, cy), (sw, sh), rot, (out_w, out_h), inv=True)
    p = np.array(pts)
    np.testing.assert_allclose(transform_points(transform_points(p, fwd), inv), p, atol=1e-6 * (1 + np.abs(p).max()))
    np.testing.assert_allclose(inv, invert_affine(fwd), rtol=1e-7, atol=1e-6 * (1 + abs(cx) + abs(cy)))


def test_transform_points_keeps_batch_shape_and_float32() -> None:
    m = get_affine((0, 0), (10, 10), 0.0, (10, 10))
    pts = np.zeros((3, 17, 2), dtype=np.float32)
    out = transform_points(pts, m)
    assert out.shape == (3, 17, 2) and out.dtype == np.float32
    with pytest.raises(ValueError):
        transform_points(np.zeros((3, 3)), m)


def test_warp_crop_moves_a_dot_where_the_affine_says() -> None:
    img = np.zeros((480, 640, 3), np.uint8)
    dot = np.array([400.0, 300.0])
    cv2.circle(img, (400, 300), 3, (255, 255, 255), -1)
    center, scale, m = crop_affine_for_box([350, 200, 450, 400], (384, 288))
    crop = warp_crop(img, m, (288, 384))
    assert crop.shape == (384, 288, 3) and crop.dtype == np.uint8
    ys, xs = np.nonzero(crop[..., 0] > 128)
    found = np.array([xs.mean(), ys.mean()])
    np.testing.assert_allclose(found, transform_points(dot, m), atol=1.0)
    # the region of crop_affine_for_box is the box enlarged by 25 % after the 3:4 fit
    np.testing.assert_allclose(center_scale_to_box(center, scale), [400 - 93.75, 300 - 125, 400 + 93.75, 300 + 125])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-1e4, 1e4, **finite), st.floats(-1e4, 1e4, **finite),
                       st.floats(0, 1e4, **finite), st.floats(0, 1e4, **finite)), min_size=1, max_size=6),
    st.sampled_from([0.75, 1.0, 4 / 3, 0.5]),
    st.floats(0.5, 2.0, **finite),
)
def test_boxes_to_center_scale_is_box_to_center_scale_for_many(boxes, aspect, padding) -> None:
    xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes])
    xyxy[0, 2:] = xyxy[0, :2]  # always one degenerate box
    centers, scales = boxes_to_center_scale(xyxy, aspect, padding)
    for box, center, scale in zip(xyxy, centers, scales):
        one_center, one_scale = box_to_center_scale(box, aspect, padding)
        assert np.array_equal(center, one_center) and np.array_equal(scale, one_scale)  # bit for bit


def test_warp_crop_writes_into_a_given_row() -> None:
    img = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    _, _, m = crop_affine_for_box([10, 5, 50, 55], (32, 24))
    batch = np.zeros((2, 32, 24, 3), np.uint8)
    out = warp_crop(img, m, (24, 32), out=batch[1])
    assert np.shares_memory(out, batch) and np.array_equal(batch[1], warp_crop(img, m, (24, 32)))
    assert not batch[0].any()


def test_get_affine_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        get_affine((0, 0), (0, 10), 0.0, (10, 10))
    with pytest.raises(ValueError):
        get_affine((0, 0), (10, 10), float("nan"), (10, 10))
    with pytest.raises(ValueError):
        invert_affine(np.zeros((2, 3)))
