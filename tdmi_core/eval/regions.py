"""Ignore regions: which points lie strictly inside a polygon, as poseval decides it.

Both official PoseTrack kits build a ``shapely`` polygon from each ignore region and drop the keypoints
``polygon.contains(point)`` accepts. For a point that is GEOS's ray-crossing test
(``RayCrossingCounter``): a point on an edge or a vertex is *not* contained (boundary), and inside
means an odd number of crossings of a ray to the right (so a self-intersecting region uses the
even-odd rule). This module reproduces that test without shapely, with exact orientation signs
(float filter, exact rational fallback), as GEOS's robust predicate gives.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

# Float filter for the orientation determinant: above this relative bound the float sign is exact
# (Shewchuk's bound for a 2x2 determinant of differences); below it, redo the sign exactly.
_ORIENT_ERRBOUND = 3.3306690738754716e-16


def _exact_orientation(p1x: float, p1y: float, p2x: float, p2y: float, qx: float, qy: float) -> int:
    """Sign of the cross product (p2 - p1) x (q - p1), computed exactly in rationals."""
    det = (Fraction(p2x) - Fraction(p1x)) * (Fraction(qy) - Fraction(p2y)) - (Fraction(p2y) - Fraction(p1y)) * (
        Fraction(qx) - Fraction(p2x)
    )
    return (det > 0) - (det < 0)


def _orientation(p1: np.ndarray, p2: np.ndarray, q: np.ndarray) -> np.ndarray:
    """GEOS ``Orientation::index(p1, p2, q)`` for arrays of points: 1 left, -1 right, 0 collinear.

    Args:
        p1, p2: segment end points, shape (N, 2).
        q: query points, shape (N, 2).

    Returns:
        (N,) int array of orientation signs, exact for float64 inputs.
    """
    detleft = (p1[:, 0] - q[:, 0]) * (p2[:, 1] - q[:, 1])
    detright = (p1[:, 1] - q[:, 1]) * (p2[:, 0] - q[:, 0])
    det = detleft - detright
    bound = _ORIENT_ERRBOUND * (np.abs(detleft) + np.abs(detright))
    sign = np.sign(det).astype(np.int64)
    unsure = ~(np.abs(det) > bound)  # also catches NaN
    for i in np.flatnonzero(unsure):
        if np.all(np.isfinite(p1[i])) and np.all(np.isfinite(p2[i])) and np.all(np.isfinite(q[i])):
            sign[i] = _exact_orientation(p1[i, 0], p1[i, 1], p2[i, 0], p2[i, 1], q[i, 0], q[i, 1])
        else:
            sign[i] = 0
    return sign


def _is_rectangle(ring: np.ndarray) -> bool:
    """GEOS ``Polygon::isRectangle`` on a closed ring of shape (V, 2)."""
    if ring.shape[0] != 5:
        return False
    xmin, ymin = ring.min(axis=0)
    xmax, ymax = ring.max(axis=0)
    if not np.all(((ring[:, 0] == xmin) | (ring[:, 0] == xmax)) & ((ring[:, 1] == ymin) | (ring[:, 1] == ymax))):
        return False
    changed = ring[1:] != ring[:-1]
    return bool(np.all(changed[:, 0] != changed[:, 1]))


def points_in_polygon(points_xy: np.ndarray, polygon_xy: np.ndarray) -> np.ndarray:
    """Which points lie strictly inside one polygon (shapely ``Polygon(polygon_xy).contains(Point)``).

    Args:
        points_xy: query points, shape (N, 2), float.
        polygon_xy: polygon vertices, shape (V, 2), V == 0 (empty polygon: contains nothing) or V >= 3;
            the ring is closed automatically, as shapely does.

    Returns:
        (N,) bool array, True where the point is in the polygon's interior (not on its boundary).
    """
    points = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    ring = np.asarray(polygon_xy, dtype=np.float64).reshape(-1, 2)
    if ring.shape[0] == 0 or points.shape[0] == 0:
        return np.zeros(points.shape[0], dtype=bool)
    if ring.shape[0] < 3:
        raise ValueError(f"an ignore region needs at least 3 vertices, got {ring.shape[0]}")
    if not np.array_equal(ring[0], ring[-1]):
        ring = np.vstack([ring, ring[:1]])
    px = points[:, 0]
    py = points[:, 1]
    if _is_rectangle(ring):
        # GEOS's rectangle shortcut: strictly inside the envelope (differs only for degenerate rings)
        xmin, ymin = ring.min(axis=0)
        xmax, ymax = ring.max(axis=0)
        return (px > xmin) & (px < xmax) & (py > ymin) & (py < ymax)
    n_points = points.shape[0]
    crossings = np.zeros(n_points, dtype=np.int64)
    on_boundary = np.zeros(n_points, dtype=bool)
    # GEOS locateInRing counts segment (ring[i], ring[i-1]) for i = 1..n-1; p2 is the earlier vertex.
    for i in range(1, ring.shape[0]):
        p1x, p1y = ring[i]
        p2x, p2y = ring[i - 1]
        todo = ~((p1x < px) & (p2x < px))  # segments wholly left of the point never count
        at_vertex = todo & (px == p2x) & (py == p2y)
        on_boundary |= at_vertex
        todo &= ~at_vertex
        if p1y == p2y:  # horizontal segment: only a boundary test, never a crossing
            on_boundary |= todo & (py == p1y) & (px >= min(p1x, p2x)) & (px <= max(p1x, p2x))
            continue
        # upward edges include their start and exclude their end; downward edges the reverse
        straddle = todo & (((p1y > py) & (p2y <= py)) | ((p2y > py) & (p1y <= py)))
        idx = np.flatnonzero(straddle)
        if idx.size == 0:
            continue
        seg1 = np.broadcast_to(np.array([p1x, p1y]), (idx.size, 2))
        seg2 = np.broadcast_to(np.array([p2x, p2y]), (idx.size, 2))
        orient = _orientation(seg1, seg2, points[idx])
        on_boundary[idx[orient == 0]] = True
        if p2y < p1y:  # re-orient the segment upwards
            orient = -orient
        np.add.at(crossings, idx[orient == 1], 1)
    return (~on_boundary) & (crossings % 2 == 1)


def points_in_regions(points_xy: np.ndarray, regions: tuple[np.ndarray, ...] | list[np.ndarray]) -> np.ndarray:
    """Which points lie strictly inside any of the ignore regions.

    Args:
        points_xy: query points, shape (N, 2).
        regions: polygons, each of shape (V, 2).

    Returns:
        (N,) bool array.
    """
    points = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    inside = np.zeros(points.shape[0], dtype=bool)
    for polygon in regions:
        inside |= points_in_polygon(points, polygon)
    return inside
