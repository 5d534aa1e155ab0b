"""Tests for tdmi_core.codec: targets, decoding, the pinned quarter-pixel rule."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tdmi_core.codec import HeatmapCodec, get_heatmap_maximum, refine_dark, refine_quarter_pixel

finite = dict(allow_nan=False, allow_infinity=False)


@pytest.fixture()
def codec() -> HeatmapCodec:
    return HeatmapCodec((384, 288), (96, 72), sigma=3)


def test_encode_shapes_peak_and_weights(codec: HeatmapCodec) -> None:
    kpts = np.array([[100.0, 200.0], [4.0, 4.0], [1000.0, 50.0]])
    hm, w = codec.encode(kpts, np.array([1, 0, 1]))
    assert hm.shape == (3, 96, 72) and hm.dtype == np.float32 and w.dtype == np.float32
    np.testing.assert_array_equal(w, [1, 0, 0])  # invisible, and far outside the crop
    assert hm[1].max() == 0 and hm[2].max() == 0
    # exact centre (25, 50) in heatmap pixels is integer here → peak value 1 at that pixel
    assert hm[0, 50, 25] == pytest.approx(1.0)
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (50, 25)
    # truncation at 3 sigma, like HRNet targets
    assert hm[0, 50, 25 + 10] == 0 and hm[0, 50, 25 + 9] > 0


def test_keypoint_just_outside_still_trains(codec: HeatmapCodec) -> None:
    hm, w = codec.encode(np.array([[-20.0, 100.0]]), np.array([2]))  # 5 hm px left of the crop
    assert w[0] == 1 and hm[0, :, 0].max() > 0


def test_nan_keypoint_gets_zero_weight(codec: HeatmapCodec) -> None:
    hm, w = codec.encode(np.array([[np.nan, 1.0]]), np.array([1]))
    assert w[0] == 0 and np.all(hm == 0)


@settings(max_examples=300, deadline=None)
@given(
    x=st.floats(0.0, 71 * 4.0, **finite),  # the heatmap grid spans crop pixels [0, (w - 1) * stride]
    y=st.floats(0.0, 95 * 4.0, **finite),
)
def test_encode_decode_round_trip_is_sub_pixel(x: float, y: float) -> None:
    codec = HeatmapCodec((384, 288), (96, 72), sigma=3)
    hm, _ = codec.encode(np.array([[x, y]]), np.array([1]))
    coords, scores = codec.decode(hm)
    # quarter-pixel rule: error ≤ 0.25 heatmap pixel per axis away from the border = 1 crop pixel here
    err = np.abs(coords[0] - [x, y]) / codec.stride_xy
    hm_xy = np.array([x, y]) / codec.stride_xy
    interior = (hm_xy >= 1) & (hm_xy <= np.array([72, 96]) - 2)
    assert np.all(err[interior] <= 0.25 + 1e-4)
    assert np.all(err <= 0.5 + 1e-4)
    assert scores[0] > 0.9


def test_decode_batch_axes_and_scores(codec: HeatmapCodec) -> None:
    rng = np.random.default_rng(0)
    kpts = rng.uniform([10, 10], [270, 370], size=(2, 5, 17, 2))
    hms = np.stack([np.stack([codec.encode(k, np.ones(17))[0] for k in b]) for b in kpts]) * 0.5
    coords, scores = codec.decode(hms)
    assert coords.shape == (2, 5, 17, 2) and scores.shape == (2, 5, 17)
    assert np.abs(coords - kpts).max() <= 1.0 + 1e-4
    assert np.all(scores > 0.45) and np.all(scores <= 0.5)


def _peak(h: int, w: int, x: int, y: int, right: float, down: float) -> np.ndarray:
    hm = np.zeros((1, h, w), np.float32)
    hm[0, y, x] = 1.0
    if 0 <= x + 1 < w:
        hm[0, y, x + 1] = right
    if 0 <= x - 1:
        hm[0, y, x - 1] = 0.5
    if 0 <= y + 1 < h:
        hm[0, y + 1, x] = down
    if 0 <= y - 1:
        hm[0, y - 1, x] = 0.5
    return hm


def test_quarter_pixel_rule_is_per_axis() -> None:
    """Pinned rule: refine x iff 0 < px < w-1, y iff 0 < py < h-1, toward the higher neighbour."""
    h, w = 8, 6
    cases = [
        # (x, y, right, down) -> expected refined (x, y)
        ((3, 4, 0.8, 0.2), (3.25, 3.75)),
        ((3, 0, 0.8, 0.9), (3.25, 0.0)),  # top row: x still refined (HRNet's joint gate would not)
        ((1, 4, 0.2, 0.8), (0.75, 4.25)),  # column 1 refined (HRNet's `1 < px` would not)
        ((0, 4, 0.8, 0.8), (0.0, 4.25)),  # left border: no x step
        ((5, 7, 0.0, 0.0), (5.0, 7.0)),  # corner: no step
        ((3, 4, 0.5, 0.5), (3.0, 4.0)),  # equal neighbours: no shift
    ]
    for (x, y, right, down), expected in cases:
        hm = _peak(h, w, x, y, right, down)
        locs, vals = get_heatmap_maximum(hm)
        np.testing.assert_array_equal(locs[0], [x, y])
        assert vals[0] == 1.0
        np.testing.assert_allclose(refine_quarter_pixel(hm, locs)[0], expected, err_msg=str((x, y)))


def test_decode_scales_to_crop_pixels() -> None:
    codec = HeatmapCodec((64, 48), (16, 12))
    hm = _peak(16, 12, 5, 6, 0.9, 0.1)
    coords, scores = codec.decode(hm)
    np.testing.assert_allclose(coords[0], [5.25 * 4, 5.75 * 4])
    assert scores[0] == 1.0


def test_decode_errors(codec: HeatmapCodec) -> None:
    with pytest.raises(ValueError, match="shape"):
        codec.decode(np.zeros((17, 64, 48)))
    bad = np.zeros((17, 96, 72), np.float32)
    bad[3, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        codec.decode(bad)
    with pytest.raises(ValueError):
        HeatmapCodec((384, 288), (0, 72))
    with pytest.raises(ValueError):
        codec.encode(np.zeros((17, 3)), np.ones(17))


def dark_on_whole_maps(heatmaps: np.ndarray, locs: np.ndarray, sigma: float) -> np.ndarray:
    """DARK as published: cv2.GaussianBlur of each whole map, rescaled to its peak, log, one Newton step."""
    import cv2

    flat = heatmaps.reshape(-1, *heatmaps.shape[-2:]).astype(np.float32)
    h, w = flat.shape[-2:]
    ksize = 2 * int(round(2.5 * sigma)) + 1
    out = np.asarray(locs, dtype=np.float64).reshape(-1, 2).copy()
    for i, m in enumerate(flat):
        b = cv2.GaussianBlur(m, (ksize, ksize), sigma)
        log = np.log(np.maximum(b * (m.max() / b.max()), 1e-10)).astype(np.float64)
        x, y = int(out[i, 0]), int(out[i, 1])
        if not (1 < x < w - 2 and 1 < y < h - 2):
            continue
        g = np.array([log[y, x + 1] - log[y, x - 1], log[y + 1, x] - log[y - 1, x]]) / 2
        hxx = (log[y, x + 2] - 2 * log[y, x] + log[y, x - 2]) / 4
        hyy = (log[y + 2, x] - 2 * log[y, x] + log[y - 2, x]) / 4
        hxy = (log[y + 1, x + 1] - log[y - 1, x + 1] - log[y + 1, x - 1] + log[y - 1, x - 1]) / 4
        if hxx * hyy - hxy * hxy > 1e-12 and hxx < 0:
            out[i] += np.clip(-np.linalg.solve([[hxx, hxy], [hxy, hyy]], g), -1.0, 1.0)
    return out.reshape(np.shape(locs))


@pytest.mark.parametrize(("hw", "sigma"), [((64, 48), 2.0), ((96, 72), 3.0), ((16, 8), 2.0), ((8, 6), 1.0)])
def test_dark_smooths_only_the_peaks_patch_with_the_whole_maps_numbers(hw, sigma):
    """refine_dark blurs a 5x5 patch per peak; it must equal DARK on whole blurred maps, borders included
    (maps smaller than the kernel too), and find a Gaussian's sub-pixel centre."""
    rng = np.random.default_rng(int(sigma * 10) + hw[0])
    yy, xx = np.mgrid[: hw[0], : hw[1]]
    heatmaps = (rng.random((3, 17, *hw)) ** 3 * 0.3).astype(np.float32)
    centres = np.stack([rng.uniform(-1, hw[1], (3, 17)), rng.uniform(-1, hw[0], (3, 17))], axis=-1)
    heatmaps += np.exp(-((yy - centres[..., 1, None, None]) ** 2 + (xx - centres[..., 0, None, None]) ** 2)
                       / (2 * sigma**2)).astype(np.float32)
    locs, _ = get_heatmap_maximum(heatmaps)
    refined = refine_dark(heatmaps, locs, sigma)
    np.testing.assert_allclose(refined, dark_on_whole_maps(heatmaps, locs, sigma), atol=1e-4)
    clean = np.exp(-((yy - 20.3) ** 2 + (xx - 30.6) ** 2) / (2 * 2.0**2)).astype(np.float32)[None]
    if hw == (64, 48):  # a clean Gaussian: DARK lands within a few hundredths of a pixel of its centre
        loc, _ = get_heatmap_maximum(clean)
        np.testing.assert_allclose(refine_dark(clean, loc, 2.0), [[30.6, 20.3]], atol=0.05)
