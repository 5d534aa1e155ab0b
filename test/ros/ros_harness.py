"""Helpers for ROS tests: an rclpy context in the pytest process and managed child processes.

The loopback DDS environment is set by test/conftest.py before anything here imports rclpy.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"


class RosHarness:
    """One rclpy context + node + executor living in the pytest process."""

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, predicate: Callable[[], bool], timeout_s: float,
                   what: str | Callable[[], str] = "condition") -> None:
        """Spin the executor until ``predicate()`` is true; fail the test after ``timeout_s``
        (``what`` may be a callable, for a message describing the state at the timeout)."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout_s:.1f} s waiting for {what() if callable(what) else what}")
            self.executor.spin_once(timeout_sec=0.05)

    def spin_for(self, duration_s: float) -> None:
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


class ProcessManager:
    """Starts child processes with the session's ROS env and stops them (SIGINT, then SIGKILL)."""

    def __init__(self, env: dict[str, str], cwd: Path, log_dir: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.log_dir = log_dir
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, args: list[str], name: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
        env = dict(self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(extra_env or {})
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        proc._tdmi_log = log  # type: ignore[attr-defined]
        self.procs.append((proc, log_path))
        return proc

    def log_text(self, proc: subprocess.Popen) -> str:
        for p, path in self.procs:
            if p is proc:
                return path.read_text(errors="replace")
        return ""

    def wait_for_log(self, proc: subprocess.Popen, text: str, timeout_s: float = 60.0) -> None:
        """Until ``text`` appears in the output of ``proc``; fails if it exits first or time runs out."""
        deadline = time.monotonic() + timeout_s
        while text not in self.log_text(proc):
            if proc.poll() is not None:
                pytest.fail(f"process exited ({proc.returncode}) before logging {text!r}:\n{self.log_text(proc)}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} in the output after {timeout_s:.0f} s:\n{self.log_text(proc)}")
            time.sleep(0.01)

    def stop(self, proc: subprocess.Popen, timeout_s: float = 10.0) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        proc._tdmi_log.close()  # type: ignore[attr-defined]
        return proc.returncode

    def stop_all(self) -> None:
        for proc, _ in reversed(self.procs):
            self.stop(proc)


def non_loopback_sockets(pids: list[int]) -> list[tuple[int, Any]]:
    """Every inet/inet6 socket of ``pids`` whose local or remote address is not 127.0.0.1/::1."""
    import psutil

    loopback = {"127.0.0.1", "::1"}
    bad = []
    for pid in pids:
        for conn in psutil.Process(pid).net_connections(kind="inet"):
            if conn.laddr and conn.laddr.ip not in loopback:
                bad.append((pid, conn))
            elif conn.raddr and conn.raddr.ip not in loopback:
                bad.append((pid, conn))
    return bad


def write_pose_params(tmp_path: Path, repo_root: Path, runtime: dict[str, Any] | None = None,
                      **overrides: Any) -> Path:
    """config/pose.yaml with test settings for the pose node (tiny untrained model, fast diagnostics).

    ``overrides`` set node parameters, ``runtime`` the fields of its runtime section.
    """
    import yaml
    from tiny_model import write_tiny_model_yaml

    config = yaml.safe_load((repo_root / "config" / "pose.yaml").read_text())
    params = config["/**/tdmi_pose"]["ros__parameters"]
    params["runtime"].update(allow_untrained=True, weights="", model=str(write_tiny_model_yaml(tmp_path)), num_threads=1)
    params["runtime"].update(runtime or {})
    params.update(diagnostics_period_s=0.2)
    params.update(overrides)
    path = tmp_path / "pose_test.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_pose_node(procs: ProcessManager, params_file: Path, *extra: str, name: str = "pose_node") -> subprocess.Popen:
    return procs.start(["-m", "tdmi_ros.node", "--ros-args", "--params-file", str(params_file), *extra], name=name)


class StreamProbe:
    """Publishes synthetic frames + detections and records /poses, markers, diagnostics (pytest side),
    on the plain topics or a camera's (``namespace``)."""

    def __init__(self, ros: RosHarness, image_qos_depth: int = 50, namespace: str = "") -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from tdmi_msgs.msg import PersonDetectionArray, Skeleton2DArray
        from visualization_msgs.msg import MarkerArray

        def topic(name: str) -> str:
            return f"{namespace}/{name}" if namespace else name

        reliable = QoSProfile(depth=image_qos_depth, reliability=ReliabilityPolicy.RELIABLE)
        self.ros = ros
        node = ros.node
        self.image_pub = node.create_publisher(Image, topic("image"), reliable)
        self.det_pub = node.create_publisher(PersonDetectionArray, topic("detections"), reliable)
        self.poses: list[Any] = []
        self.markers: list[Any] = []
        self.diagnostics: list[Any] = []
        out_qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.poses_sub = node.create_subscription(Skeleton2DArray, topic("poses"), self.poses.append, out_qos)
        node.create_subscription(MarkerArray, topic("poses/markers"), self.markers.append, out_qos)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 50)

    def wait_ready(self, proc: subprocess.Popen, procs: ProcessManager, timeout_s: float = 60.0) -> None:
        """Until the node is active (publishes diagnostics) and our publishers and /poses are matched."""
        self.ros.spin_until(
            lambda: (bool(self.diagnostics) and self.image_pub.get_subscription_count() > 0
                     and self.det_pub.get_subscription_count() > 0 and self.poses_sub.get_publisher_count() > 0)
            or proc.poll() is not None,
            timeout_s, "the pose node to become active",
        )
        assert proc.poll() is None, f"pose node died:\n{procs.log_text(proc)}"

    def last_diagnostics(self) -> dict[str, str]:
        from tdmi_ros.diagnostics import diagnostics_to_dict

        return diagnostics_to_dict(self.diagnostics[-1])

    def fresh_diagnostics(self, timeout_s: float = 10.0) -> dict[str, str]:
        n = len(self.diagnostics)
        self.ros.spin_until(lambda: len(self.diagnostics) > n + 1, timeout_s, "fresh diagnostics")
        return self.last_diagnostics()


def synthetic_frame(i: int, width: int = 64, height: int = 48) -> tuple[Any, np.ndarray]:
    """A dark image with a bright 'person' block moving right 1 px per frame, and its box [4]."""
    import numpy as np

    img = np.full((height, width, 3), 30, np.uint8)
    x1 = 8 + (i % 20)
    box = np.array([x1, 6, x1 + 16, 42], dtype=np.float64)
    img[6:42, x1:x1 + 16] = (200, 180, 160)
    return img, box


def header_for(i: int, base_ns: int = 1_700_000_000_000_000_000, period_ns: int = 33_333_333, frame_id: str = "cam"):
    from std_msgs.msg import Header

    from tdmi_ros.conversions import ns_to_stamp

    return Header(stamp=ns_to_stamp(base_ns + i * period_ns), frame_id=frame_id)
