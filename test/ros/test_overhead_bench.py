"""tdmi-node-overhead end to end on a few frames: old and new code each in its own process, one report."""
from __future__ import annotations

import pytest

from tdmi_ros.overhead_bench import _table, compare

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_old_and_new_node_are_timed_in_one_run() -> None:
    # HEAD as the "old" code: the tool checks the commit out with git archive and runs both trees
    report = compare("HEAD", persons=[2], frames=5, rounds=1)
    (cell,) = report["cells"]
    assert cell["persons"] == 2
    for key in ("old_wall_ms", "new_wall_ms", "old_cpu_ms", "new_cpu_ms"):
        assert 0.0 < cell[key] < 1000.0, (key, cell)
    assert cell["ratio_wall"] == round(cell["old_wall_ms"] / cell["new_wall_ms"], 2)
    assert "old/new" in _table(report)
