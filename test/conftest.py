"""Test-session set-up shared by every test.

DDS must stay on loopback during tests: the FastDDS profile in config/ binds only 127.0.0.1,
ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT keeps the rmw from replacing it (LOCALHOST would),
and a per-session ROS_DOMAIN_ID keeps parallel runs apart. This runs before any test module
imports rclpy, and child processes inherit the same environment.
"""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK_PROFILE = REPO_ROOT / "config" / "fastdds-loopback.xml"


def _pick_domain_id() -> int:
    # 1..101 keeps 32 participants per domain below port 32768 (see docs/install.md).
    override = os.environ.get("TDMI_TEST_DOMAIN_ID")
    return int(override) if override else random.SystemRandom().randint(1, 101)


def _configure_loopback_dds() -> None:
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(LOOPBACK_PROFILE)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SYSTEM_DEFAULT"
    os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    os.environ["ROS_DOMAIN_ID"] = str(_pick_domain_id())
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="tdmi_ros_log_"))
    if "VIRTUAL_ENV" in os.environ:
        os.environ.setdefault("AMENT_PREFIX_PATH", os.environ["VIRTUAL_ENV"])


_configure_loopback_dds()
# 2 cores run the test process and its ROS child processes together: one math thread each keeps
# them from oversubscribing the CPU (set before torch/onnxruntime are imported anywhere).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """Absolute path of the repository checkout."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def ros_env() -> dict[str, str]:
    """Environment for child processes that join this test session's loopback DDS domain."""
    return dict(os.environ)
