"""Clean shutdown of every program at any moment: SIGINT, SIGTERM, and SIGINT followed by SIGTERM
during teardown, 20 times each at random moments after start, for the pose node, the detector, the
video publisher, the recorder and the ``tdmi-pose`` launcher (which supervises a pose node). Every
run must exit 0 with no traceback.

Half the runs start the program as ``tdmi-pose`` starts its children (``python -m``, SIGINT/SIGTERM
held) and draw the moment from the ``exec``; the other half start it plainly, through its console
script's entry point as a shell, ``ros2 run`` or ``ros2 launch`` does, and draw the moment from the
program's first line (before it, Python itself is still starting and no program can handle a
signal; see tdmi_ros/shutdown.py). The moments span start-up (imports, rclpy init,
configure/activate, model loading) and steady running.
"""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from ros_harness import write_pose_params

from tdmi_ros.shutdown import stop_signals_held

pytestmark = [pytest.mark.ros, pytest.mark.slow]

RUNS_PER_KIND = 20
KINDS = ("SIGINT", "SIGTERM", "SIGINT+SIGTERM")
CONCURRENT = 4  # runs at once: most of a run is waiting for its moment
LAUNCHER_SHUTDOWN_S = 30
# longer than the launcher's whole escalation (SIGINT, SIGTERM after the shutdown timeout, SIGKILL 5 s after
# the next one): a child still starting up on a loaded machine may legitimately need the SIGTERM step
EXIT_WAIT_S = 2 * LAUNCHER_SHUTDOWN_S + 5 + 30
# the moment is drawn from [0, this): about the program's start-up time on 2 busy cores, so most
# signals race start-up and the rest land in steady running
WINDOW_S = {"pose_node": 5.0, "detector": 4.0, "video_publisher": 2.5, "recorder": 2.0, "launcher": 6.0}
SIGTERM_BIT = 1 << (signal.SIGTERM - 1)
# what setup.py's console scripts (lib/tdmi_ros/<name>, bin/tdmi-pose) run, as pip writes them
CONSOLE_SCRIPT = "import sys; from tdmi_ros.programs import {0}; sys.exit({0}())"
ENTRY_POINTS = {"pose_node": "pose_node", "detector": "detector_node", "video_publisher": "video_publisher",
                "recorder": "recorder", "launcher": "launcher"}
BAD_OUTPUT = ("Traceback", "terminate called", "KeyboardInterrupt", "RCLError", "Segmentation fault", "Fatal Python error")


@dataclass(frozen=True)
class Run:
    kind: str
    held: bool  # started with the signals held (as by tdmi-pose)
    moment_s: float
    second_after_s: float  # SIGINT+SIGTERM: the SIGTERM this long after the SIGINT


def _signal_state(pid: int) -> int:
    """Blocked | caught signals of ``pid`` as a bit set (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    return int(fields.get("SigBlk", "0"), 16) | int(fields.get("SigCgt", "0"), 16)


def _wait_first_line(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """Until the program holds or catches SIGTERM: its first line has run."""
    deadline = time.monotonic() + timeout_s
    while not _signal_state(proc.pid) & SIGTERM_BIT and proc.poll() is None:
        assert time.monotonic() < deadline, "the program never reached its first line"
        time.sleep(0.002)


def _execute(argv: list[str], run: Run, env: dict, cwd: Path, log_path: Path) -> tuple[int | None, str]:
    """Start, signal at the run's moment, wait: (exit code or None if it ended by itself, output)."""
    with open(log_path, "wb") as log:
        if run.held:
            with stop_signals_held():
                proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        else:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
            _wait_first_line(proc)
        try:
            try:
                proc.wait(run.moment_s)
                return None, f"exited by itself before the signal\n{log_path.read_text(errors='replace')}"
            except subprocess.TimeoutExpired:
                pass
            proc.send_signal(signal.SIGINT if run.kind != "SIGTERM" else signal.SIGTERM)
            if run.kind == "SIGINT+SIGTERM":
                time.sleep(run.second_after_s)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            code = proc.wait(EXIT_WAIT_S)
        finally:
            if proc.poll() is None:  # (the launcher's children too)
                for child in psutil.Process(proc.pid).children(recursive=True):
                    child.kill()
                proc.kill()
                proc.wait()
    return code, log_path.read_text(errors="replace")


@pytest.fixture
def programs(tmp_path: Path, repo_root: Path, video: Path, movenet: Path) -> dict[str, list[str]]:
    params = write_pose_params(tmp_path, repo_root)
    pose = ["--ros-args", "--params-file", str(params)]
    return {
        "pose_node": ["tdmi_ros.node", *pose],
        "detector": ["tdmi_ros.detector_node", "--ros-args", "-p", f"model_path:={movenet}"],
        "video_publisher": ["tdmi_ros.video_publisher", "--ros-args", "-p", f"source:={video}",
                            "-p", "loop:=true", "-p", "resize_width:=160"],
        "recorder": ["tdmi_ros.recorder", "--output", str(tmp_path / "poses.jsonl")],
        "launcher": ["tdmi_ros.launch_cli", "--config", str(params), "--allow-untrained",
                     "--shutdown-timeout-s", str(LAUNCHER_SHUTDOWN_S)],
    }


@pytest.mark.parametrize("program", list(WINDOW_S))
def test_every_signal_at_any_moment_exits_0_without_traceback(program, programs, procs, tmp_path, repo_root):
    rng = random.Random(f"{program}-15")  # reproducible moments
    runs = [Run(kind, held=i % 2 == 0, moment_s=rng.uniform(0.0, WINDOW_S[program]),
                second_after_s=rng.uniform(0.02, 0.5))
            for kind in KINDS for i in range(RUNS_PER_KIND)]
    module, *args = programs[program]
    argv = {True: [sys.executable, "-m", module, *args],  # as tdmi-pose starts it
            False: [sys.executable, "-c", CONSOLE_SCRIPT.format(ENTRY_POINTS[program]), *args]}  # as ros2 launch does
    with ThreadPoolExecutor(CONCURRENT) as pool:
        results = list(pool.map(
            lambda n_run: _execute(argv[n_run[1].held], n_run[1], procs.env, repo_root,
                                   tmp_path / f"{program}_{n_run[0]}.log"),
            enumerate(runs)))
    failures = [(run, code, out) for run, (code, out) in zip(runs, results)
                if code != 0 or any(bad in out for bad in BAD_OUTPUT)]
    by_kind = {kind: sum(r.kind == kind for r, _ in zip(runs, results)) for kind in KINDS}
    print(f"\n{program}: {len(runs)} runs {by_kind}, moments {min(r.moment_s for r in runs):.2f}.."
          f"{max(r.moment_s for r in runs):.2f} s, failures {len(failures)}")
    assert not failures, "\n\n".join(f"{run} -> exit {code}\n{out[-3000:]}" for run, code, out in failures[:3])
