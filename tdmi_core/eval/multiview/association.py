"""Which track in each camera is the same person: cross-view association by triangulation error.

``associate_people`` goes through the cameras in calibration order. The first camera's tracks start
one person each; each later camera's tracks are assigned to the people found so far by an optimal
one-to-one assignment (Hungarian, the same answer as brute force over permutations) on a cost, or
start new people. The cost of adding track ``j`` to person ``p`` is the median, over the joint-frames
where track ``j`` and at least one of ``p``'s views are confident, of the reprojection error in ``j``'s
view of the point triangulated from ``p``'s views plus ``j``, divided by ``j``'s box height. A pair
costs ∞ with fewer than ``min_overlap`` such joint-frames, or when ``p`` already has a track of this
camera on one of ``j``'s frames; pairs above ``max_cost`` are not assigned. Assignment repeats for
the camera's leftover tracks so a track broken in two by the tracker rejoins its person. People seen
in fewer than ``min_views`` cameras (background people, spurious tracks) are left unassigned.

``align_people`` then maps another method's people onto a reference method's, by box centres.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from tdmi_core.eval.multiview.camera import Camera
from tdmi_core.eval.multiview.predictions import PoseArrays, Track
from tdmi_core.eval.multiview.triangulation import reprojection_errors, triangulate, view_weights

# 10 % of the person's height: a wrong person costs about their distance apart (~50 % and more), a right
# one the calibration error (~2 % on the demo rig).
DEFAULT_MAX_COST = 0.1
_INFEASIBLE = 1e9


def _at_frames(track: Track, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The track's keypoints ``[n, K, 3]`` and boxes ``[n, 4]`` on ``frames`` (NaN where it is absent)."""
    rows = np.clip(np.searchsorted(track.frames, frames), 0, len(track.frames) - 1)
    present = track.frames[rows] == frames
    keypoints = np.where(present[:, None, None], track.keypoints[rows], np.nan)
    boxes = np.where(present[:, None], track.boxes[rows], np.nan)
    return keypoints, boxes


def _cost(
    person: list[tuple[int, Track]],
    candidate: tuple[int, Track],
    cameras: Sequence[Camera],
    min_score: float,
    min_overlap: int,
    max_frames: int,
) -> float:
    """Median reprojection error / box height in the candidate's view when it joins the person.

    ``person`` and ``candidate`` are (camera index, track) pairs.
    """
    cam, track = candidate
    if any(c == cam and np.isin(track.frames, other.frames).any() for c, other in person):
        return np.inf
    frames = track.frames[np.linspace(0, len(track.frames) - 1, min(max_frames, len(track.frames))).astype(int)]
    views = sorted({c for c, _ in person} | {cam})
    joints = track.keypoints.shape[1]
    keypoints = np.full((len(frames), joints, len(views), 3), np.nan)
    for c, member in person + [candidate]:
        member_keypoints, _ = _at_frames(member, frames)
        # a camera's tracks never overlap in time, so they fill its slot side by side
        np.copyto(keypoints[:, :, views.index(c)], member_keypoints, where=np.isfinite(member_keypoints))
    weights = view_weights(keypoints, min_score).reshape(-1, len(views))
    own = views.index(cam)
    usable = (weights[:, own] > 0) & ((weights > 0).sum(axis=1) >= 2)
    if usable.sum() < min_overlap:
        return np.inf
    uv = keypoints[..., :2].reshape(-1, len(views), 2)[usable]
    view_cameras = [cameras[c] for c in views]
    points = triangulate(uv, weights[usable], view_cameras)
    errors = reprojection_errors(points, uv, view_cameras)[:, own]
    _, boxes = _at_frames(track, frames)
    heights = np.repeat(boxes[:, 3] - boxes[:, 1], joints)[usable]
    return float(np.nanmedian(errors / heights))


def associate_people(
    tracks: Mapping[str, Mapping[int, Track]],
    cameras: Sequence[Camera],
    *,
    min_score: float = 0.3,
    max_cost: float = DEFAULT_MAX_COST,
    min_views: int = 3,
    min_overlap: int = 10,
    max_frames: int = 200,
) -> dict[tuple[str, int], int]:
    """Map ``(camera name, track id)`` → person id (0, 1, … in order of discovery); see the module docstring.

    ``tracks`` is ``predictions.tracks_by_camera(...)``; ``max_frames`` subsamples each track's frames.
    """
    names = [camera.name for camera in cameras]
    unknown = set(tracks) - set(names)
    if unknown:
        raise ValueError(f"predictions name cameras not in the calibration: {sorted(unknown)}")

    def members(person: list[tuple[int, int]]) -> list[tuple[int, Track]]:
        return [(c, tracks[names[c]][track_id]) for c, track_id in person]

    people: list[list[tuple[int, int]]] = []  # (camera index, track id) per person
    for c, name in enumerate(names):
        pending = sorted(tracks.get(name, {}))
        while pending and people:
            cost = np.array(
                [
                    [_cost(members(person), (c, tracks[name][track_id]), cameras, min_score, min_overlap, max_frames)
                     for person in people]
                    for track_id in pending
                ]
            )
            rows, cols = linear_sum_assignment(np.where(cost < max_cost, cost, _INFEASIBLE))
            accepted = [(row, col) for row, col in zip(rows, cols) if cost[row, col] < max_cost]
            if not accepted:
                break
            for row, col in accepted:
                people[col].append((c, pending[row]))
            assigned = {pending[row] for row, _ in accepted}
            pending = [track_id for track_id in pending if track_id not in assigned]
        people.extend([[(c, track_id)] for track_id in pending])

    kept = [person for person in people if len({c for c, _ in person}) >= min_views]
    return {(names[c], track_id): p for p, person in enumerate(kept) for c, track_id in person}


def align_people(reference: PoseArrays, other: PoseArrays, max_distance: float = 0.5) -> PoseArrays:
    """Re-index ``other``'s people as ``reference``'s (same frames and cameras), matched by box centres.

    The cost of a pair is the median over shared (frame, camera) of the box-centre distance divided by
    the reference box height; pairs are matched one-to-one (Hungarian) up to ``max_distance``. A person
    of ``other`` left unmatched is dropped; a reference person left unmatched is absent (NaN).
    """
    def centres(boxes: np.ndarray) -> np.ndarray:
        return (boxes[..., :2] + boxes[..., 2:]) / 2

    ref_centres, ref_heights = centres(reference.boxes), reference.boxes[..., 3] - reference.boxes[..., 1]
    other_centres = centres(other.boxes)
    P_ref, P_other = reference.boxes.shape[1], other.boxes.shape[1]
    cost = np.full((P_other, P_ref), np.inf)
    for i in range(P_other):
        for j in range(P_ref):
            distance = np.linalg.norm(other_centres[:, i] - ref_centres[:, j], axis=-1) / ref_heights[:, j]
            if np.isfinite(distance).any():
                cost[i, j] = np.nanmedian(distance)
    rows, cols = linear_sum_assignment(np.where(cost < max_distance, cost, _INFEASIBLE))
    F, _, C, K, _ = other.keypoints.shape
    keypoints = np.full((F, P_ref, C, K, 3), np.nan)
    boxes = np.full((F, P_ref, C, 4), np.nan)
    track_ids = np.full((F, P_ref, C), -1)
    for i, j in zip(rows, cols):
        if cost[i, j] < max_distance:
            keypoints[:, j], boxes[:, j] = other.keypoints[:, i], other.boxes[:, i]
            track_ids[:, j] = other.track_ids[:, i]
    return PoseArrays(frames=other.frames, keypoints=keypoints, boxes=boxes, track_ids=track_ids)
