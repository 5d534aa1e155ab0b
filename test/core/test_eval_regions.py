"""Ignore-region test: shapely ``Polygon.contains(Point)`` semantics (values checked against shapely 2.0.7)."""
from __future__ import annotations

import numpy as np
import pytest

from tdmi_core.eval.regions import points_in_polygon, points_in_regions

SQUARE = [(0, 0), (10, 0), (10, 10), (0, 10)]
BOWTIE = [(0, 0), (10, 10), (10, 0), (0, 10)]  # self-intersecting at (5, 5)
TRIANGLE = [(0, 0), (10, 0), (0, 10)]
# zero-area 4-vertex ring that GEOS's rectangle shortcut treats as its bounding box [0, 3] x [0, 5]
DEGENERATE = [(0, 5), (0, 0), (3, 0), (0, 0)]


@pytest.mark.parametrize(
    ("polygon", "points", "expected"),
    [
        # interior yes; an edge, a vertex, outside no; just inside the right edge yes
        (SQUARE, [(5, 5), (0, 5), (10, 10), (10.000001, 5), (9.999999, 5)], [True, False, False, False, True]),
        # even-odd lobes: left and right lobes inside, crossing point on the boundary, top/bottom outside
        (BOWTIE, [(5, 2), (2, 5), (5, 5), (8, 5), (5, 8)], [False, True, False, True, False]),
        (DEGENERATE, [(2, 3), (1, 1), (3, 5)], [True, True, False]),
        # on the hypotenuse (5, 5) -> boundary; tiny positive coordinates are inside
        (TRIANGLE, [(5, 5), (4.9, 4.9), (5.1, 5.1), (1e-300, 1e-300)], [False, True, False, True]),
    ],
)
def test_matches_shapely_contains(polygon, points, expected) -> None:
    assert points_in_polygon(np.array(points, float), np.array(polygon, float)).tolist() == expected


def test_closed_ring_and_empty_polygon() -> None:
    closed = SQUARE + [SQUARE[0]]
    pts = np.array([(5, 5), (0, 0), (11, 5)], float)
    assert points_in_polygon(pts, np.array(closed, float)).tolist() == [True, False, False]
    assert points_in_polygon(pts, np.zeros((0, 2))).tolist() == [False, False, False]


def test_too_few_vertices_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 3 vertices"):
        points_in_polygon(np.zeros((1, 2)), np.array([(0, 0), (1, 1)], float))


def test_any_of_several_regions() -> None:
    regions = [np.array(SQUARE, float), np.array(SQUARE, float) + 20]
    pts = np.array([(5, 5), (25, 25), (15, 15)], float)
    assert points_in_regions(pts, regions).tolist() == [True, True, False]
