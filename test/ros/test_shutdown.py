"""tdmi_ros.shutdown without ROS: signals become a stop request, and a signal that comes before a
program's handlers exist waits for them when the program was started with the signals held."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tdmi_ros.shutdown import stop_signals_held

# sleeps before run_program (as a program's slow imports do), then reports what it saw
PROGRAM = """
import sys, time
from tdmi_ros.shutdown import hold_stop_signals, run_program
if sys.argv[1] == "hold":
    hold_stop_signals()
print("started", flush=True)
time.sleep(0.5)
sys.exit(run_program(lambda stop: 0 if stop.requested else 3))
"""


def _start(repo_root, mode: str, held_by_parent: bool) -> subprocess.Popen:
    argv = [sys.executable, "-c", PROGRAM, mode]
    kwargs = dict(cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if held_by_parent:
        with stop_signals_held():
            return subprocess.Popen(argv, **kwargs)
    return subprocess.Popen(argv, **kwargs)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize(("mode", "held_by_parent"), [("hold", False), ("plain", True)])
def test_a_signal_before_the_handlers_waits_for_them(repo_root, sig, mode, held_by_parent):
    proc = _start(repo_root, mode, held_by_parent)
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(sig)  # during the "imports": before run_program
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Traceback" not in out


def test_without_holding_the_default_action_applies(repo_root):
    """What hold_stop_signals prevents: SIGTERM during the imports kills the program."""
    proc = _start(repo_root, "plain", held_by_parent=False)
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM


def test_no_signal_means_no_stop(repo_root):
    proc = _start(repo_root, "hold", held_by_parent=False)
    proc.communicate(timeout=30)
    assert proc.returncode == 3
