"""The comparison table: LOVO error, person-height-normalised error and jitter of several methods.

Every statistic is taken on the samples where *all* methods count (see ``metrics``): the same
(frame, person, camera, joint) for LOVO, the same (frame triple, person, camera, joint) for jitter,
so no method gains by leaving hard joints out; each method's own count and its share of the union
of all methods' samples (coverage) are reported beside. Intervals are 95 % frame bootstraps, with
paired differences and ratios on the same resamples. People are matched across cameras per method
(``association``) and across methods to the first method's people.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tdmi_core.eval.multiview.association import align_people, associate_people
from tdmi_core.eval.multiview.bootstrap import (
    FrameBootstrap,
    Interval,
    mean_interval,
    median_interval,
    paired_median_intervals,
)
from tdmi_core.eval.multiview.bundle import RefinementReport, refine_calibration
from tdmi_core.eval.multiview.camera import Camera
from tdmi_core.eval.multiview.metrics import MetricConfig, jitter, lovo_errors, shared_heights
from tdmi_core.eval.multiview.predictions import PoseArrays, Predictions, num_joints, to_arrays, tracks_by_camera

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MethodRow:
    """One method's row of a table (pixels unless named otherwise).

    Attributes:
        observations: the method's own countable LOVO joint-observations.
        coverage: ``observations`` over the union of all methods' countable observations.
        lovo_px_median, lovo_px_mean: LOVO error on the common samples.
        lovo_height_median: LOVO error ÷ person height, median.
        per_camera_px_median: LOVO median per held-out camera.
        per_joint_px_median: LOVO median per joint index (no interval).
        jitter: median acceleration ÷ person height on the common triples.
        jitter_triples: the method's own countable jitter triples.
    """

    observations: int
    coverage: float
    lovo_px_median: Interval
    lovo_px_mean: Interval
    lovo_height_median: Interval
    per_camera_px_median: dict[str, Interval]
    per_joint_px_median: list[float]
    jitter: Interval
    jitter_triples: int


@dataclass(frozen=True)
class PairRow:
    """Method ``a`` against ``b`` on the same samples and resamples (difference ``a − b``, ratio ``a ÷ b``)."""

    a: str
    b: str
    lovo_px_median_difference: Interval
    lovo_px_median_ratio: Interval
    per_camera_px_median_difference: dict[str, Interval]
    per_camera_px_median_ratio: dict[str, Interval]
    jitter_difference: Interval
    jitter_ratio: Interval


@dataclass(frozen=True)
class Table:
    """All rows under one calibration (``"file"`` or ``"refined"``)."""

    calibration: str
    common_observations: int
    union_observations: int
    common_jitter_triples: int
    methods: dict[str, MethodRow]
    pairs: list[PairRow]


@dataclass(frozen=True)
class Evaluation:
    """Result of ``evaluate``.

    ``calibrations`` are the cameras of each table; ``errors`` (LOVO px per (calibration, method)) and
    ``arrays`` (each method's people) are the per-sample data, kept for ``worst_frames``.
    """

    methods: list[str]
    cameras: list[str]
    frames: int
    people: int
    tables: list[Table]
    refinement: RefinementReport | None
    calibrations: dict[str, list[Camera]] = field(repr=False)
    errors: dict[tuple[str, str], np.ndarray] = field(repr=False)
    arrays: dict[str, PoseArrays] = field(repr=False)


@dataclass(frozen=True)
class WorstFrame:
    """A (frame, held-out camera, person) of one method, ranked by its mean LOVO error over joints."""

    frame: int
    camera: str
    person: int
    track_id: int
    mean_px: float
    joints: int


def people_arrays(
    methods: Mapping[str, Predictions], cameras: Sequence[Camera], min_score: float
) -> dict[str, PoseArrays]:
    """Each method's people across cameras, on the union of all frames, indexed as the first method's.

    Cross-camera association is done on the first method's keypoints. A method whose tracks are the
    first method's (the same camera and track ids, as top-down methods run on shared boxes) reuses that
    association, so a poor method cannot lose samples by failing to associate its own people; any
    other method is associated on its own keypoints and then matched to the first method's people.
    """
    names = [camera.name for camera in cameras]
    joints = {name: num_joints(predictions) for name, predictions in methods.items()}
    if len(set(joints.values())) != 1:
        raise ValueError(f"methods disagree on the number of joints: {joints}")
    frames = np.array(sorted({int(f) for p in methods.values() for per_cam in p.values() for f in per_cam}))
    arrays: dict[str, PoseArrays] = {}
    shared: set[str] = set()  # methods indexed by the reference's association already
    reference_keys: set | None = None
    reference_people: dict = {}
    for method, predictions in methods.items():
        tracks = tracks_by_camera(predictions)
        keys = {(camera, track) for camera, per_cam in tracks.items() for track in per_cam}
        if reference_keys is not None and keys == reference_keys:
            people = reference_people
            shared.add(method)
        else:
            people = associate_people(tracks, cameras, min_score=min_score)
        if reference_keys is None:
            reference_keys, reference_people = keys, people
        n_people = max(people.values(), default=-1) + 1
        logger.info("%s: %d people found in ≥3 cameras (%d tracks)", method, n_people, len(people))
        arrays[method] = to_arrays(tracks, people, names, frames, n_people, joints[method])
    reference = next(iter(arrays.values()))
    if reference.keypoints.shape[1] == 0:
        raise ValueError(f"the first method ({next(iter(arrays))}) has no person seen in three cameras")
    return {method: a if method in shared else align_people(reference, a) for method, a in arrays.items()}


def _table(
    label: str,
    errors: Mapping[str, np.ndarray],
    jitters: Mapping[str, np.ndarray],
    heights: np.ndarray,
    frames: np.ndarray,
    camera_names: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    n_boot: int,
    seed: int,
) -> Table:
    """Rows and pairs of one calibration from per-sample LOVO errors ``[F, P, C, K]`` and jitter values."""
    shape = heights.shape + (next(iter(errors.values())).shape[-1],)
    per_height = {m: e / heights[..., None] for m, e in errors.items()}
    valid = {m: np.isfinite(v) for m, v in per_height.items()}
    common = np.logical_and.reduce(list(valid.values()))
    union = np.logical_or.reduce(list(valid.values()))
    frame_of = np.broadcast_to(frames[:, None, None, None], shape)
    camera_of = np.broadcast_to(np.arange(shape[2])[None, None, :, None], shape)[common]
    joint_of = np.broadcast_to(np.arange(shape[3]), shape)[common]
    boot = FrameBootstrap(frame_of[common], n_boot, seed)
    jitter_common = np.logical_and.reduce([np.isfinite(j) for j in jitters.values()])
    jitter_boot = FrameBootstrap(frame_of[jitter_common], n_boot, seed + 1)

    rows = {}
    for m, e in errors.items():
        v = e[common]
        rows[m] = MethodRow(
            observations=int(valid[m].sum()),
            coverage=float(valid[m].sum() / max(union.sum(), 1)),
            lovo_px_median=median_interval(boot, v),
            lovo_px_mean=mean_interval(boot, v),
            lovo_height_median=median_interval(boot, per_height[m][common]),
            per_camera_px_median={n: median_interval(boot, v, camera_of == c) for c, n in enumerate(camera_names)},
            per_joint_px_median=[float(np.median(v[joint_of == k])) if (joint_of == k).any() else np.nan
                                 for k in range(shape[3])],
            jitter=median_interval(jitter_boot, jitters[m][jitter_common]),
            jitter_triples=int(np.isfinite(jitters[m]).sum()),
        )
    pair_rows = []
    for a, b in pairs:
        va, vb = errors[a][common], errors[b][common]
        per_camera = {n: paired_median_intervals(boot, va, vb, camera_of == c) for c, n in enumerate(camera_names)}
        difference, ratio = paired_median_intervals(boot, va, vb)
        jitter_difference, jitter_ratio = paired_median_intervals(
            jitter_boot, jitters[a][jitter_common], jitters[b][jitter_common]
        )
        pair_rows.append(
            PairRow(
                a=a,
                b=b,
                lovo_px_median_difference=difference,
                lovo_px_median_ratio=ratio,
                per_camera_px_median_difference={n: d for n, (d, _) in per_camera.items()},
                per_camera_px_median_ratio={n: r for n, (_, r) in per_camera.items()},
                jitter_difference=jitter_difference,
                jitter_ratio=jitter_ratio,
            )
        )
    return Table(
        calibration=label,
        common_observations=int(common.sum()),
        union_observations=int(union.sum()),
        common_jitter_triples=int(jitter_common.sum()),
        methods=rows,
        pairs=pair_rows,
    )


def evaluate(
    methods: Mapping[str, Predictions],
    cameras: Sequence[Camera],
    *,
    pairs: Sequence[tuple[str, str]] = (),
    refine_from: Sequence[str] = (),
    refine_pool: Mapping[str, Predictions] | None = None,
    config: MetricConfig = MetricConfig(),
    n_boot: int = 1000,
    seed: int = 0,
) -> Evaluation:
    """Compare methods by LOVO error and jitter, with the calibration given and, if ``refine_from``
    names at least two methods, with one refined on their confident joints (``bundle``).

    ``pairs`` are (a, b) method names compared as ``a − b`` and ``a ÷ b``. ``refine_pool`` holds
    predictions used only for the refinement (named in ``refine_from``), not as rows of the table.
    """
    pool = {name: p for name, p in (refine_pool or {}).items() if name not in methods}
    rows = list(methods)
    methods = {**methods, **pool}
    unknown = ({name for pair in pairs for name in pair} | set(refine_from)) - set(methods)
    if unknown:
        raise ValueError(f"unknown methods: {sorted(unknown)}")
    if refine_from and len(set(refine_from)) < 2:
        raise ValueError("refine the calibration from at least two methods, never from the method under test alone")
    all_arrays = people_arrays(methods, cameras, config.min_score)
    arrays = {m: all_arrays[m] for m in rows}
    frames = next(iter(arrays.values())).frames
    heights = shared_heights([a.boxes for a in arrays.values()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN where a sample does not count
        jitters = {
            m: jitter(a.keypoints, a.frames, config.present_min_score) / heights[..., None] for m, a in arrays.items()
        }

    calibrations = {"file": list(cameras)}
    refinement = None
    if refine_from:
        calibrations["refined"], refinement = refine_calibration(
            cameras, {m: all_arrays[m].keypoints for m in dict.fromkeys(refine_from)}, max_error_px=config.max_error_px
        )
    errors: dict[tuple[str, str], np.ndarray] = {}
    tables = []
    for label, calibration in calibrations.items():
        for m, a in arrays.items():
            logger.info("LOVO error of %s (%s calibration)", m, label)
            errors[label, m] = lovo_errors(a.keypoints, calibration, config)
        tables.append(
            _table(
                label,
                {m: errors[label, m] for m in arrays},
                jitters,
                heights,
                frames,
                [c.name for c in cameras],
                pairs,
                n_boot,
                seed,
            )
        )
    P = next(iter(arrays.values())).keypoints.shape[1]
    return Evaluation(
        methods=rows,
        cameras=[c.name for c in cameras],
        frames=len(frames),
        people=P,
        tables=tables,
        refinement=refinement,
        calibrations=calibrations,
        errors=errors,
        arrays=arrays,
    )


def worst_frames(
    evaluation: Evaluation, method: str, calibration: str = "file", n: int = 3, min_joints: int = 6
) -> list[WorstFrame]:
    """The ``n`` frames where ``method``'s mean LOVO error over one person's joints in one held-out view
    is largest (on its own countable joints, at least ``min_joints``), one entry per frame."""
    errors = evaluation.errors[calibration, method]
    arrays = evaluation.arrays[method]
    counted = np.isfinite(errors).sum(axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.where(counted >= min_joints, np.nanmean(errors, axis=-1), -np.inf)
    found: list[WorstFrame] = []
    for flat in np.argsort(mean, axis=None)[::-1]:
        f, p, c = np.unravel_index(flat, mean.shape)
        if len(found) == n or not np.isfinite(mean[f, p, c]):
            break
        if any(w.frame == arrays.frames[f] for w in found):
            continue
        found.append(
            WorstFrame(
                frame=int(arrays.frames[f]),
                camera=evaluation.cameras[c],
                person=int(p),
                track_id=int(arrays.track_ids[f, p, c]),
                mean_px=float(mean[f, p, c]),
                joints=int(counted[f, p, c]),
            )
        )
    return found
