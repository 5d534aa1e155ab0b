"""Console-script entry points of the ROS programs (``ros2 run tdmi_ros <name>``, ``pose.launch.py``).

A console script imports its target module before calling it; for the nodes that means rclpy,
OpenCV and torch, seconds in which SIGINT or SIGTERM would kill the process (no handler yet).
These entry points live in a module that imports nothing heavy: they hold the two signals first,
then import the program, whose ``main`` takes the held signals over (:mod:`tdmi_ros.shutdown`).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from tdmi_ros.shutdown import hold_stop_signals


def _entry_point(module: str) -> Callable[[], int]:
    """A console-script target: hold SIGINT/SIGTERM, import ``module``, return its ``main()``."""
    def run() -> int:
        hold_stop_signals()
        return int(importlib.import_module(module).main())

    run.__doc__ = f"Run {module}.main with SIGINT/SIGTERM held until it takes them over."
    return run


pose_node = _entry_point("tdmi_ros.node")
detector_node = _entry_point("tdmi_ros.detector_node")
video_publisher = _entry_point("tdmi_ros.video_publisher")
recorder = _entry_point("tdmi_ros.recorder")  # /poses to JSON lines
bag_recorder = _entry_point("tdmi_ros.bag_recorder")
bag_player = _entry_point("tdmi_ros.bag_player")
launcher = _entry_point("tdmi_ros.launch_cli")  # tdmi-pose
