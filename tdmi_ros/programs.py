"""Console-script entry points of the ROS programs (``ros2 run tdmi_ros <name>``, ``pose.launch.py``).

A console script imports its target module before calling it; for the nodes that means rclpy,
OpenCV and torch, seconds in which SIGINT or SIGTERM would kill the process (no handler yet).
These entry points live in a module that imports nothing heavy: they hold the two signals first,
then import the program, whose ``main`` takes the held signals over (:mod:`tdmi_ros.shutdown`).
"""
from __future__ import annotations

import importlib

from tdmi_ros.shutdown import hold_stop_signals


def _run(module: str) -> int:
    hold_stop_signals()
    return int(importlib.import_module(module).main())


def pose_node() -> int:
    """``pose_node``: the TDMI pose node (:mod:`tdmi_ros.node`)."""
    return _run("tdmi_ros.node")


def detector_node() -> int:
    """``detector_node``: the person detector (:mod:`tdmi_ros.detector_node`)."""
    return _run("tdmi_ros.detector_node")


def video_publisher() -> int:
    """``video_publisher``: a video file or camera as images (:mod:`tdmi_ros.video_publisher`)."""
    return _run("tdmi_ros.video_publisher")


def recorder() -> int:
    """``recorder``: /poses to JSON lines (:mod:`tdmi_ros.recorder`)."""
    return _run("tdmi_ros.recorder")


def bag_recorder() -> int:
    """``bag_recorder``: topics to a rosbag2 MCAP recording (:mod:`tdmi_ros.bag_recorder`)."""
    return _run("tdmi_ros.bag_recorder")


def bag_player() -> int:
    """``bag_player``: publish a rosbag2 recording at its recorded rate (:mod:`tdmi_ros.bag_player`)."""
    return _run("tdmi_ros.bag_player")


def launcher() -> int:
    """``tdmi-pose``: the launcher for pip installs (:mod:`tdmi_ros.launch_cli`)."""
    return _run("tdmi_ros.launch_cli")
