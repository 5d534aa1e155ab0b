"""Fixtures for ROS tests (helpers live in ros_harness.py so test modules can import them)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from ros_harness import ProcessManager, RosHarness


@pytest.fixture
def ros() -> Iterator[RosHarness]:
    """An rclpy context, node and executor in the pytest process (own context per test)."""
    harness = RosHarness(f"pytest_{os.getpid()}")
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def procs(ros_env: dict[str, str], repo_root: Path, tmp_path: Path) -> Iterator[ProcessManager]:
    """Starts child processes in this session's loopback DDS domain; stops them at teardown."""
    env = dict(ros_env)
    # children import tdmi_ros from the checkout, installed or not
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo_root), env.get("PYTHONPATH", "")) if p)
    manager = ProcessManager(env, repo_root, tmp_path)
    try:
        yield manager
    finally:
        manager.stop_all()


VIDEO_CANDIDATES = ("assets/videos/vtest.avi", "/usr/share/doc/opencv-doc/examples/data/vtest.avi")


@pytest.fixture(scope="session")
def video(repo_root: Path) -> Path:
    """OpenCV's vtest.avi (people walking), or skip."""
    for candidate in VIDEO_CANDIDATES:
        path = repo_root / candidate
        if path.is_file():
            return path
    pytest.skip("no vtest.avi: run scripts/fetch_assets.py --only vtest (or apt-get install opencv-doc)")


@pytest.fixture(scope="session")
def movenet(repo_root: Path) -> Path:
    """The MoveNet MultiPose ONNX file of the detector, or skip."""
    path = repo_root / "weights" / "movenet_multipose_lightning.onnx"
    if not path.is_file():
        pytest.skip("weights/movenet_multipose_lightning.onnx missing")
    return path
