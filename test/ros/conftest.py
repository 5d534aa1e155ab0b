"""Fixtures for ROS tests: an rclpy context in the pytest process and managed child processes.

The loopback DDS environment is set by test/conftest.py before anything here imports rclpy.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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

    def spin_until(self, predicate: Callable[[], bool], timeout_s: float, what: str = "condition") -> None:
        """Spin the executor until ``predicate()`` is true; fail the test after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout_s:.1f} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.05)

    def spin_for(self, duration_s: float) -> None:
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture
def ros() -> Iterator[RosHarness]:
    harness = RosHarness(f"pytest_{os.getpid()}")
    try:
        yield harness
    finally:
        harness.close()


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


@pytest.fixture
def procs(ros_env: dict[str, str], repo_root: Path, tmp_path: Path) -> Iterator[ProcessManager]:
    env = dict(ros_env)
    # children import tdmi_ros / test scripts from the checkout, installed or not
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo_root), env.get("PYTHONPATH", "")) if p)
    manager = ProcessManager(env, repo_root, tmp_path)
    try:
        yield manager
    finally:
        manager.stop_all()


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
