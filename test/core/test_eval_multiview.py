"""Multi-view metric on synthetic cameras with known geometry, and the reader on pose2sim's demo calibration."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tdmi_core.eval.multiview import (
    Camera,
    all_view_residual,
    Detection,
    FrameBootstrap,
    MetricConfig,
    evaluate,
    jitter,
    load_calibration,
    load_predictions,
    lovo_errors,
    project,
    read_qca,
    refine_calibration,
    robust_triangulate,
    save_calibration,
    save_predictions,
    triangulate,
    undistort_points,
    worst_frames,
)
from tdmi_core.eval.multiview.__main__ import main
from tdmi_core.eval.multiview.association import associate_people
from tdmi_core.eval.multiview.bootstrap import median_interval, paired_median_intervals
from tdmi_core.eval.multiview.camera import distort, normalized_to_pixels
from tdmi_core.eval.multiview.predictions import tracks_by_camera

QCA = Path(__file__).resolve().parents[1] / "data" / "multiview" / "Calib.qca.txt"
SIZE = (1088, 1920)
DISTORTION = np.array([-0.08, 0.05, 1e-3, -8e-4])

# A standing person in metres (x forward, y left, z up), COCO-17 order.
TEMPLATE = np.array(
    [
        [0.10, 0.00, 1.65], [0.08, 0.03, 1.68], [0.08, -0.03, 1.68], [0.00, 0.08, 1.65], [0.00, -0.08, 1.65],
        [0.00, 0.20, 1.45], [0.00, -0.20, 1.45], [0.00, 0.25, 1.15], [0.00, -0.25, 1.15], [0.05, 0.25, 0.90],
        [0.05, -0.25, 0.90], [0.00, 0.12, 0.95], [0.00, -0.12, 0.95], [0.03, 0.12, 0.50], [0.03, -0.12, 0.50],
        [0.00, 0.12, 0.08], [0.00, -0.12, 0.08],
    ]
)


def look_at(centre: np.ndarray, target: np.ndarray, K: np.ndarray, dist: np.ndarray, name: str) -> Camera:
    forward = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    return Camera(name=name, size=SIZE, K=K, dist=dist, R=R, t=-R @ centre)


def make_rig(dist: np.ndarray = DISTORTION) -> list[Camera]:
    cameras = []
    for i, angle in enumerate(np.radians([20.0, 110.0, 200.0, 290.0])):
        K = np.array([[1650.0 + 10 * i, 0.0, 544.0 + 3 * i], [0.0, 1655.0 + 10 * i, 960.0 - 4 * i], [0.0, 0.0, 1.0]])
        centre = np.array([4.5 * np.cos(angle), 4.5 * np.sin(angle), 1.8 + 0.1 * i])
        cameras.append(look_at(centre, np.array([0.0, 0.0, 1.0]), K, dist, f"cam{i + 1:02d}"))
    return cameras


def make_people(frames: int = 40, centres: tuple = ((-0.8, 0.0), (0.8, 0.3))) -> np.ndarray:
    """Moving skeletons ``[F, P, 17, 3]``: each walks a small circle, turning, with swinging joints."""
    t = np.arange(frames)[:, None]
    people = []
    for p, (cx, cy) in enumerate(centres):
        heading = 0.05 * t + p
        rotation = Rotation.from_euler("z", heading).as_matrix()  # [F, 3, 3]
        body = np.einsum("fij,kj->fki", rotation, TEMPLATE)
        swing = 0.08 * np.sin(0.4 * t[..., None] + np.arange(17)[None, :, None] + np.array([0.0, 1.0, 2.0]))
        root = np.stack([cx + 0.3 * np.cos(0.1 * t + p), cy + 0.3 * np.sin(0.1 * t + p), 0 * t], axis=-1)
        people.append(body + swing + root)
    return np.stack(people, axis=1)


def project_all(points: np.ndarray, cameras: list[Camera], score: float = 0.9) -> np.ndarray:
    """``[F, P, K, 3]`` world → ``[F, P, C, K, 3]`` pixels with a score."""
    uv = np.stack([project(points, camera) for camera in cameras], axis=2)
    return np.concatenate([uv, np.full(uv.shape[:-1] + (1,), score)], axis=-1)


def boxes_of(keypoints: np.ndarray) -> np.ndarray:
    xy = keypoints[..., :2]
    return np.concatenate([np.nanmin(xy, axis=-2) - 20, np.nanmax(xy, axis=-2) + 20], axis=-1)


def to_predictions(keypoints: np.ndarray, cameras: list[Camera], track_ids: dict | None = None) -> dict:
    """``[F, P, C, K, 3]`` → predictions; ``track_ids[(c, p)]`` renames a camera's tracks (default: p)."""
    F, P, C = keypoints.shape[:3]
    boxes = boxes_of(keypoints)
    return {
        camera.name: {
            f: [Detection((track_ids or {}).get((c, p), p), boxes[f, p, c], keypoints[f, p, c]) for p in range(P)]
            for f in range(F)
        }
        for c, camera in enumerate(cameras)
    }


# --- calibration -----------------------------------------------------------------------------------------------


def test_qca_reader_converts_as_pose2sim() -> None:
    cameras = read_qca(QCA)
    assert [c.name for c in cameras] == ["cam01", "cam02", "cam03", "cam04"]
    cam = cameras[0]
    assert cam.size == (1088, 1920)  # fov_video right - left + 1, bottom - top + 1
    # by hand from cam01's <intrinsic>: 1/64-pixel units, video window at left = top = 0
    np.testing.assert_allclose(
        cam.K, [[107599.671875 / 64, 0, 34110.316406 / 64], [0, 107588.828125 / 64, 60680.792969 / 64], [0, 0, 1]]
    )
    np.testing.assert_allclose(cam.dist, np.array([-0.046183, 0.139983, 0.000608, 0.00069]) / 64)
    # <transform> rows r11..r33 and the position in mm: world → camera is the matrix turned by π about x
    M = np.array(
        [
            [0.5536380477336265, 0.8046719867383512, 0.2144479094331626],
            [-0.4345300743838753, 0.05946489349975602, 0.8986921279821063],
            [0.7104002579937896, -0.5907342212870501, 0.3825762057979294],
        ]
    )
    position = np.array([1460.2323709212087, -1909.1590482454608, 1896.5058524092062]) / 1000
    flip = np.diag([1.0, -1.0, -1.0])
    np.testing.assert_allclose(cam.R, flip @ M, atol=1e-15)
    np.testing.assert_allclose(cam.t, -flip @ M @ position, atol=1e-15)
    np.testing.assert_allclose(cam.center, position, atol=1e-12)
    # pose2sim's Calib.toml of this file (cv2.Rodrigues) says rotation and translation:
    rotvec = Rotation.from_matrix(cam.R).as_rotvec()
    np.testing.assert_allclose(rotvec, [1.68827548, 1.04832205, -0.41955852], atol=1e-8)
    np.testing.assert_allclose(cam.t, [0.32110489, 0.95633206, 2.89071305], atol=1e-8)


def test_qca_rig_centre_projects_inside_every_image() -> None:
    cameras = read_qca(QCA)
    centre = np.mean([c.center for c in cameras], axis=0)
    centre[2] = 1.0  # a person's hip height on the floor below the rig
    for camera in cameras:
        u, v = project(centre, camera)
        assert 0 <= u < 1088 and 0 <= v < 1920, camera.name
        assert abs(u - 544) < 250 and abs(v - 960) < 300, camera.name  # near the centre: cameras face the rig


def test_calibration_json_round_trip(tmp_path: Path) -> None:
    cameras = read_qca(QCA)
    save_calibration(cameras, tmp_path / "calib.json")
    loaded = load_calibration(tmp_path / "calib.json")
    assert load_calibration(QCA)[2].name == "cam03"
    for a, b in zip(cameras, loaded):
        assert a.name == b.name and a.size == b.size
        for field in ("K", "dist", "R", "t"):
            np.testing.assert_allclose(getattr(b, field), getattr(a, field), atol=1e-14)


# --- geometry -------------------------------------------------------------------------------------------------


def test_undistortion_inverts_distortion_over_the_image() -> None:
    camera = make_rig()[0]
    u, v = np.meshgrid(np.linspace(-60, 1148, 41), np.linspace(-60, 1980, 61))
    xn = np.stack([(u - 544) / 1650, (v - 960) / 1655], axis=-1)  # undistorted rays over and past the image
    distorted = normalized_to_pixels(distort(xn, camera.dist), camera.K)
    back = normalized_to_pixels(undistort_points(distorted, camera), camera.K)
    assert np.abs(back - normalized_to_pixels(xn, camera.K)).max() < 1e-6
    # and the distortion is not negligible there: tens of pixels at the corners
    assert np.abs(distorted - normalized_to_pixels(xn, camera.K)).max() > 20


def test_projection_is_pinhole_plus_distortion() -> None:
    camera = make_rig()[1]
    point = np.array([0.3, -0.2, 1.2])
    xc = camera.R @ point + camera.t
    x, y = xc[:2] / xc[2]
    k1, k2, p1, p2 = camera.dist
    r2 = x * x + y * y
    xd = x * (1 + k1 * r2 + k2 * r2 * r2) + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * (1 + k1 * r2 + k2 * r2 * r2) + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    expected = [camera.K[0, 0] * xd + camera.K[0, 2], camera.K[1, 1] * yd + camera.K[1, 2]]
    np.testing.assert_allclose(project(point, camera), expected, rtol=1e-14)
    assert np.isnan(project(camera.center + 2 * (camera.center - point), camera)).all()  # behind the camera


def test_triangulation_of_exact_views_is_exact() -> None:
    cameras = make_rig()
    points = make_people(5).reshape(-1, 3)
    uv = np.stack([project(points, camera) for camera in cameras], axis=1)
    weights = np.random.default_rng(0).uniform(0.3, 1.0, uv.shape[:2])
    np.testing.assert_allclose(triangulate(uv, weights, cameras), points, atol=1e-9)
    weights[:, 1:] = 0  # one view: no point
    assert np.isnan(triangulate(uv, weights, cameras)).all()


def test_robust_step_rejects_a_gross_outlier_in_one_of_three_views() -> None:
    cameras = make_rig()[:3]
    points = make_people(3).reshape(-1, 3)
    uv = np.stack([project(points, camera) for camera in cameras], axis=1)
    uv[:, 1] += [150.0, -90.0]  # view 2 is off by ~175 px everywhere
    weights = np.ones(uv.shape[:2])
    plain = triangulate(uv, weights, cameras)
    assert np.linalg.norm(plain - points, axis=1).min() > 0.01
    robust, used = robust_triangulate(uv, weights, cameras, max_error_px=20.0)
    np.testing.assert_allclose(robust, points, atol=1e-9)
    assert (used == [True, False, True]).all()
    # the step never goes below two views: with two views the outlier stays in
    two, used_two = robust_triangulate(uv[:, :2], weights[:, :2], cameras[:2])
    assert used_two.all() and np.isfinite(two).all()


# --- leave-one-view-out error ---------------------------------------------------------------------------------


def test_lovo_error_of_exact_2d_is_zero_with_distortion() -> None:
    cameras = make_rig()
    keypoints = project_all(make_people(), cameras)
    errors = lovo_errors(keypoints, cameras, MetricConfig())
    assert np.isfinite(errors).mean() > 0.95  # nearly every joint counts (a few leave an image)
    assert np.nanmax(errors) < 1e-6


def test_lovo_counts_incoherent_views_as_large_errors_instead_of_skipping_them() -> None:
    """A method whose other views put a joint behind the held-out camera scores the image diagonal there."""
    cameras = make_rig()
    keypoints = project_all(make_people(2), cameras)
    behind = cameras[0].center + 3.0 * (cameras[0].center - np.array([0.0, 0.0, 1.0]))  # far behind camera 1
    for c in range(1, 4):
        keypoints[:, :, c, 0, :2] = project(behind, cameras[c])
    errors = lovo_errors(keypoints, cameras, MetricConfig())
    diagonal = np.hypot(*cameras[0].size)
    np.testing.assert_allclose(errors[:, :, 0, 0], diagonal)
    assert np.nanmax(errors[:, :, 0, 1:]) < 1e-6  # the other joints are untouched


def lovo_noise_expectation(points: np.ndarray, cameras: list[Camera], sigma: float, rng: np.random.Generator) -> float:
    """Median LOVO error under i.i.d. N(0, σ²) pixel noise, to first order, sampled from its Gaussians.

    Held-out error = own noise + the triangulation error of the other 3 views projected into the view:
    covariance σ²·I + J_c (Σ_{v≠c} J_vᵀ J_v)⁻¹ J_cᵀ σ², with J the projection's Jacobian (2×3).
    """
    eps = 1e-6
    def jacobian(cam: Camera) -> np.ndarray:
        steps = [(project(points + eps * e, cam) - project(points - eps * e, cam)) / (2 * eps) for e in np.eye(3)]
        return np.stack(steps, axis=-1)

    jacobians = np.stack([jacobian(cam) for cam in cameras], axis=1)  # [N, C, 2, 3]
    norms = []
    for c in range(len(cameras)):
        others = [v for v in range(len(cameras)) if v != c]
        information = np.einsum("nvai,nvaj->nij", jacobians[:, others], jacobians[:, others])
        cov3d = sigma**2 * np.linalg.inv(information)
        J = jacobians[:, c]
        cov2d = sigma**2 * np.eye(2) + J @ cov3d @ np.swapaxes(J, 1, 2)
        draws = np.einsum("nij,nsj->nsi", np.linalg.cholesky(cov2d), rng.standard_normal((len(points), 50, 2)))
        norms.append(np.linalg.norm(draws, axis=-1).ravel())
    return float(np.median(np.concatenate(norms)))


@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_lovo_error_recovers_injected_noise(sigma: float) -> None:
    cameras = make_rig()
    people = make_people()
    rng = np.random.default_rng(1)
    keypoints = project_all(people, cameras)
    keypoints[..., :2] += rng.normal(0.0, sigma, keypoints[..., :2].shape)
    errors = lovo_errors(keypoints, cameras, MetricConfig())
    expected = lovo_noise_expectation(people.reshape(-1, 3), cameras, sigma, rng)
    assert np.nanmedian(errors) == pytest.approx(expected, rel=0.1)
    # the held-out view's own noise alone would give σ·√(2 ln 2); triangulation error adds to it
    assert expected > sigma * np.sqrt(2 * np.log(2))


def test_lovo_counts_only_confident_other_views_and_present_held_out_joints() -> None:
    cameras = make_rig()
    keypoints = project_all(make_people(4), cameras)
    keypoints[0, 0, 0, 5, 2] = 0.0  # held-out joint reported with score 0: absent in view 0
    keypoints[1, 0, 1:3, 7, 2] = 0.1  # two views below min_score: joint 7 of frame 1 has one other view left
    errors = lovo_errors(keypoints, cameras, MetricConfig(min_score=0.3))
    assert np.isnan(errors[0, 0, 0, 5])
    assert np.isfinite(errors[0, 0, 1:, 5]).all()  # view 0 just stops serving the other views' triangulations
    assert np.isnan(errors[1, 0, 0, 7]) and np.isnan(errors[1, 0, 3, 7])  # held-out 0 or 3: one other view
    assert np.isfinite(errors[1, 0, 1, 7]) and np.isfinite(errors[1, 0, 2, 7])  # unsure but present: counted


# --- jitter ---------------------------------------------------------------------------------------------------


def test_jitter_of_constant_velocity_is_zero_and_of_constant_acceleration_is_it() -> None:
    frames = np.array([0, 1, 2, 3, 4, 6, 7, 8])  # frame 5 missing
    t = frames[:, None, None, None].astype(float)
    start = np.random.default_rng(2).uniform(100, 900, (1, 2, 4, 17, 2))
    velocity = np.random.default_rng(3).uniform(-9, 9, (1, 2, 4, 17, 2))
    scores = np.ones(start.shape[:-1] + (1,))
    moving = np.concatenate([start + velocity * t[..., None], np.broadcast_to(scores, (8,) + scores.shape[1:])], -1)
    values = jitter(moving, frames, 0.0)
    assert np.nanmax(values) < 1e-9
    assert np.isfinite(values[1:4]).all() and np.isnan(values[[0, 4, 5, 7]]).all()  # triples of consecutive frames
    accelerating = moving.copy()
    accelerating[..., 0] += 0.5 * 3.0 * t**2  # 3 px/frame² along x
    np.testing.assert_allclose(jitter(accelerating, frames, 0.0)[1:4], 3.0, rtol=1e-9)


# --- bootstrap ------------------------------------------------------------------------------------------------


def test_bootstrap_median_is_the_median_of_the_resampled_frames() -> None:
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 37, 600)
    values = rng.normal(size=600)
    boot = FrameBootstrap(frames, n_boot=40, seed=5)
    mask = values > -0.5
    _, index = np.unique(frames, return_inverse=True)
    medians, masked, means = boot.medians(values), boot.medians(values, mask), boot.means(values)
    for r in range(40):
        counts = boot._counts[r][index].astype(int)
        assert medians[r] == np.median(np.repeat(values, counts))
        assert masked[r] == np.median(np.repeat(values[mask], counts[mask]))
        assert means[r] == pytest.approx(np.mean(np.repeat(values, counts)), rel=1e-12)


def test_bootstrap_interval_covers_the_truth_with_correlated_frames() -> None:
    # per-frame shared offset + per-sample noise: samples of a frame are correlated, the true median is 0
    rng = np.random.default_rng(6)
    covered = 0
    for trial in range(40):
        frames = np.repeat(np.arange(60), 10)
        values = rng.normal(size=60)[frames] + rng.normal(size=600)
        result = median_interval(FrameBootstrap(frames, n_boot=400, seed=trial), values)
        covered += result.low <= 0.0 <= result.high
    assert covered >= 34  # nominal 95 % of 40 is 38; a sample-level bootstrap would cover ~60 %


def test_paired_difference_of_identical_methods_is_zero_with_a_degenerate_interval() -> None:
    rng = np.random.default_rng(7)
    frames = np.repeat(np.arange(50), 8)
    values = rng.exponential(size=400)
    boot = FrameBootstrap(frames, n_boot=200, seed=0)
    difference, ratio = paired_median_intervals(boot, values, values.copy())
    assert (difference.value, difference.low, difference.high) == (0.0, 0.0, 0.0)
    assert (ratio.value, ratio.low, ratio.high) == (1.0, 1.0, 1.0)
    shifted, _ = paired_median_intervals(boot, values + 1.0, values)
    assert shifted.low == pytest.approx(1.0) and shifted.high == pytest.approx(1.0)


# --- bundle adjustment ----------------------------------------------------------------------------------------


def perturbed(truth: list[Camera], principal_shifts: np.ndarray, seed: int) -> list[Camera]:
    """The rig with shifted principal points, and cameras 2-4 turned by 0.5° and moved by ~2 cm."""
    rng = np.random.default_rng(seed)
    start = []
    for c, camera in enumerate(truth):
        K = camera.K.copy()
        K[:2, 2] += principal_shifts[c]
        R, t = camera.R, camera.t
        if c > 0:  # the first camera's pose is the gauge
            R = Rotation.from_rotvec(np.radians(0.5) * rng.normal(size=3) / np.sqrt(3)).as_matrix() @ R
            t = t + rng.normal(0.0, 0.02, 3)
        start.append(replace(camera, K=K, R=R, t=t))
    return start


SHIFTS = np.array([[4.0, -3.0], [18.0, -6.0], [-12.0, 10.0], [0.0, 7.0]])


def test_bundle_adjustment_recovers_principal_points_and_extrinsics_from_exact_joints() -> None:
    truth = make_rig()
    people = make_people(30)
    exact = project_all(people, truth)
    # a second method whose joints are other points (e.g. hips defined differently): also exact 2D
    shifted = project_all(people + np.array([0.02, -0.03, 0.04]), truth)
    start = perturbed(truth, SHIFTS, seed=8)
    refined, report = refine_calibration(start, {"a": exact, "b": shifted}, principal_point_sigma_px=np.inf)
    assert report.residual_before_px > 5.0 and report.residual_after_px < 0.05
    for camera, true in zip(refined, truth):
        assert np.abs(camera.K[:2, 2] - true.K[:2, 2]).max() < 1.0
        assert np.degrees(Rotation.from_matrix(camera.R @ true.R.T).magnitude()) < 0.1
        np.testing.assert_array_equal(camera.K[[0, 1], [0, 1]], true.K[[0, 1], [0, 1]])  # focal lengths kept
    baselines = [np.mean([np.linalg.norm(a.center - b.center) for a in rig for b in rig]) for rig in (start, refined)]
    assert baselines[1] == pytest.approx(baselines[0], rel=1e-9)  # the scale gauge
    np.testing.assert_allclose(refined[0].R, start[0].R, atol=1e-12)


def test_bundle_adjustment_on_noisy_joints_fits_as_well_as_the_true_calibration() -> None:
    truth = make_rig()
    people = make_people(30)
    rng = np.random.default_rng(12)
    sets = {}
    for name, offset in (("a", 0.0), ("b", 0.03)):
        keypoints = project_all(people + offset, truth)
        keypoints[..., :2] += rng.normal(0.0, 3.0, keypoints[..., :2].shape)
        sets[name] = keypoints
    start = perturbed(truth, SHIFTS, seed=8)
    refined, report = refine_calibration(start, sets)  # default: weak principal point prior
    true_residual = all_view_residual(truth, list(sets.values()), 0.5)
    assert report.residual_before_px > 3 * true_residual
    assert report.residual_after_px < 1.05 * true_residual
    # the projections are right (LOVO as with the true rig) though the principal points need not be
    errors = [np.nanmedian(lovo_errors(sets["a"], rig, MetricConfig())) for rig in (truth, refined, start)]
    assert errors[1] < 1.05 * errors[0] < errors[2]


def test_refinement_from_one_method_alone_is_refused(tmp_path: Path) -> None:
    cameras = make_rig()
    keypoints = project_all(make_people(5), cameras)
    with pytest.raises(ValueError, match="at least two"):
        refine_calibration(cameras, {"tdmi": keypoints})
    predictions = to_predictions(keypoints, cameras)
    with pytest.raises(ValueError, match="at least two"):
        evaluate({"tdmi": predictions, "other": predictions}, cameras, refine_from=["tdmi", "tdmi"])
    save_predictions(predictions, tmp_path / "tdmi.json")
    save_calibration(cameras, tmp_path / "calib.json")
    with pytest.raises(SystemExit):
        main(["--calib", str(tmp_path / "calib.json"), "--pred", f"tdmi={tmp_path / 'tdmi.json'}",
              "--refine-from", "tdmi"])


# --- association ----------------------------------------------------------------------------------------------


def test_association_recovers_permuted_track_ids_and_leaves_background_people_out() -> None:
    cameras = make_rig()
    frames = 40
    performers = project_all(make_people(frames), cameras)
    predictions = to_predictions(performers, cameras, {(0, 0): 7, (0, 1): 3, (1, 0): 2, (1, 1): 5, (2, 0): 4,
                                                       (2, 1): 11, (3, 0): 9, (3, 1): 1})
    # camera 3's tracker broke performer 1's track in two (ids 11 then 12)
    for f in range(20, frames):
        predictions["cam03"][f] = [d._replace(track_id=12) if d.track_id == 11 else d for d in predictions["cam03"][f]]
    # a bystander seen by cameras 1 and 2 only, and a spurious track in camera 4
    bystander = project_all(make_people(frames, centres=((-2.5, 2.0),)), cameras)
    junk = np.random.default_rng(9).uniform(100, 900, (frames, 17, 3))
    junk[..., 2] = 0.8
    for f in range(frames):
        for c in (0, 1):
            kp = bystander[f, 0, c]
            predictions[cameras[c].name][f].append(Detection(40, boxes_of(kp), kp))
        predictions["cam04"][f].append(Detection(41, boxes_of(junk[f]), junk[f]))

    people = associate_people(tracks_by_camera(predictions), cameras)
    first = people[("cam01", 7)], people[("cam01", 3)]
    assert first[0] != first[1]
    expected = {("cam01", 7): first[0], ("cam02", 2): first[0], ("cam03", 4): first[0], ("cam04", 9): first[0],
                ("cam01", 3): first[1], ("cam02", 5): first[1], ("cam03", 11): first[1], ("cam03", 12): first[1],
                ("cam04", 1): first[1]}
    assert people == expected


# --- the table ------------------------------------------------------------------------------------------------


def test_methods_on_shared_tracks_reuse_the_reference_association_and_pools_are_not_rows() -> None:
    """A blind method on the detector's boxes keeps every sample (scored badly), and refinement-only
    methods do not become rows."""
    cameras = make_rig()
    exact = project_all(make_people(20), cameras)
    rng = np.random.default_rng(3)
    blind = exact.copy()
    blind[..., :2] = rng.uniform(0, 1000, blind[..., :2].shape)  # cannot be associated on its own
    noisy = exact.copy()
    noisy[..., :2] += rng.normal(0.0, 2.0, noisy[..., :2].shape)
    reference = to_predictions(exact, cameras)
    blind_predictions = {  # the detector's boxes and tracks, nonsense joints
        camera: {f: [d._replace(keypoints=blind[f, p, c]) for p, d in enumerate(dets)] for f, dets in frames.items()}
        for c, (camera, frames) in enumerate(reference.items())
    }
    result = evaluate({"exact": reference, "blind": blind_predictions}, cameras,
                      refine_from=["exact", "pool"], refine_pool={"pool": to_predictions(noisy, cameras)}, n_boot=50)
    assert result.methods == ["exact", "blind"]
    rows = result.tables[0].methods
    assert set(rows) == {"exact", "blind"}
    assert rows["blind"].coverage == pytest.approx(1.0) and rows["blind"].lovo_px_median.value > 50


def test_evaluate_compares_methods_on_common_samples(tmp_path: Path) -> None:
    cameras = make_rig()
    people = make_people(30)
    rng = np.random.default_rng(10)
    exact = project_all(people, cameras)
    noisy = exact.copy()
    noisy[..., :2] += rng.normal(0.0, 3.0, noisy[..., :2].shape)
    dropper = noisy.copy()
    dropper[:, :, :, 9:11] = np.nan  # leaves out both wrists everywhere
    collapsed = noisy.copy()
    collapsed[12, 1, 2, :, :2] = collapsed[12, 1, 2, 0, :2]  # frame 12: person 1 collapses onto its nose in cam03
    methods = {
        "exact": to_predictions(exact, cameras),
        "noisy": to_predictions(noisy, cameras, {(1, 0): 5, (1, 1): 4}),  # other track ids in camera 2
        "dropper": to_predictions(dropper, cameras),
        "collapsed": to_predictions(collapsed, cameras),
    }
    result = evaluate(
        methods, cameras, pairs=[("noisy", "exact"), ("noisy", "noisy")], refine_from=["exact", "noisy"], n_boot=200
    )
    assert [t.calibration for t in result.tables] == ["file", "refined"]
    table = result.tables[0]
    rows = table.methods
    assert rows["exact"].lovo_px_median.value < 1e-6 and rows["exact"].lovo_px_median.high < 1e-6
    noisy_median = rows["noisy"].lovo_px_median
    assert 2.0 < noisy_median.low < noisy_median.value < noisy_median.high
    assert rows["dropper"].coverage == pytest.approx(15 / 17, abs=0.01) and rows["exact"].coverage == 1.0
    assert table.common_observations == rows["dropper"].observations < table.union_observations
    assert np.isnan(rows["noisy"].per_joint_px_median[9]) and rows["noisy"].per_joint_px_median[0] > 1.0
    errors = [result.errors["file", m] for m in methods]
    common = np.logical_and.reduce([np.isfinite(e) for e in errors])
    boxes = result.arrays["exact"].boxes  # the shared height is the median over methods' boxes: these, nearly
    per_height = result.errors["file", "noisy"] / (boxes[..., 3] - boxes[..., 1])[..., None]
    assert rows["noisy"].lovo_height_median.value == pytest.approx(np.median(per_height[common]), rel=0.02)
    assert rows["exact"].jitter.value > 0 and rows["noisy"].jitter.value > rows["exact"].jitter.value
    pair, same = table.pairs
    assert pair.lovo_px_median_difference.low > 0 and pair.lovo_px_median_ratio.low > 1e3
    assert (same.lovo_px_median_difference.low, same.lovo_px_median_difference.high) == (0.0, 0.0)
    assert (same.jitter_ratio.low, same.jitter_ratio.high) == (1.0, 1.0)
    assert set(rows["noisy"].per_camera_px_median) == {"cam01", "cam02", "cam03", "cam04"}
    worst = worst_frames(result, "collapsed", n=3)
    assert (worst[0].frame, worst[0].camera, worst[0].person) == (12, "cam03", 1)
    assert len({w.frame for w in worst}) == 3
    assert result.refinement is not None and result.refinement.residual_after_px < 3.0


def test_command_prints_the_table_from_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cameras = make_rig()
    keypoints = project_all(make_people(12), cameras)
    noisy = keypoints.copy()
    noisy[..., :2] += np.random.default_rng(11).normal(0.0, 2.0, noisy[..., :2].shape)
    noisy[0, 0, 0, 3] = np.nan  # a joint not reported travels as null
    save_calibration(cameras, tmp_path / "calib.json")
    save_predictions(to_predictions(keypoints, cameras), tmp_path / "a.json")
    save_predictions(to_predictions(noisy, cameras), tmp_path / "b.json")
    assert np.isnan(load_predictions(tmp_path / "b.json")["cam01"][0][0].keypoints[3]).all()
    code = main(
        [
            "--calib", str(tmp_path / "calib.json"), "--pred", f"a={tmp_path / 'a.json'}",
            "--pred", f"b={tmp_path / 'b.json'}", "--pair", "b,a", "--refine-from", "a,b", "--bootstrap", "100",
            "--json", str(tmp_path / "out.json"), "--markdown", str(tmp_path / "out.md"),
            "--save-refined", str(tmp_path / "refined.json"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "### file calibration" in printed and "### refined calibration" in printed and "| b vs a |" in printed
    assert (tmp_path / "out.md").read_text() == printed.rstrip("\n") + "\n"
    assert len(load_calibration(tmp_path / "refined.json")) == 4
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["tables"][0]["methods"]["b"]["lovo_px_median"]["value"] > 1.0


def test_runner_pairs_each_model_with_its_twin_its_symmetric_sibling_and_the_detector():
    from tdmi_core.tools.multiview_eval import _pairs

    names = ["movenet256", "m", "m_single_frame", "m_causal", "movenet256_degraded", "m_degraded", "m_single_frame_degraded"]
    assert _pairs(names) == [
        ("m", "m_single_frame"), ("m", "movenet256"),
        ("m_causal", "m_single_frame"), ("m_causal", "m"), ("m_causal", "movenet256"),
        ("m_degraded", "m_single_frame_degraded"), ("m_degraded", "movenet256_degraded"),
    ]
