"""``tdmi-pose``: start the pose node and its companions from one YAML, as ``pose.launch.py`` does.

For pip installs (no ``ros2 launch``). It takes the launch file's arguments as flags (``--config``,
``--video``, ``--detector``, ``--allow-untrained``, ``--record``, ``--cameras``; ``--node-per-camera``
is what including the launch file once per camera namespace gives) and starts the same nodes with the
same parameters: the YAML as ``--params-file``, then the flags' overrides (a test compares the two
node lists). Each node runs as ``python -m <module>`` rather than its installed executable, so it
holds SIGINT/SIGTERM from its first line.

Signals: SIGINT/SIGTERM (once or more, at any moment) are forwarded to the children as SIGINT;
children still running after ``--shutdown-timeout-s`` get SIGTERM, then SIGKILL. Children start with
SIGINT/SIGTERM held until their own handlers are in place (:mod:`tdmi_ros.shutdown`), so a signal
during their start-up is not lost and does not kill them. If the pose node (or a companion) exits
with an error, the others are stopped and ``tdmi-pose`` exits with that code; so it does if a
child ends badly while being stopped. If ``tdmi-pose`` itself dies without stopping them (SIGKILL, a
crash), Linux sends each child SIGTERM (:func:`tdmi_ros.shutdown.follow_parent`): no node is left running.

    tdmi-pose --config config/pose.yaml --video assets/videos/vtest.avi --detector
"""
from __future__ import annotations

if __name__ == "__main__":  # a program: a signal during the imports below waits for main (tdmi_ros.shutdown)
    from tdmi_ros.shutdown import hold_stop_signals

    hold_stop_signals()

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tdmi_ros.resources import resolve_data_file
from tdmi_ros.shutdown import PARENT_PID_ENV, StopRequest, run_program, stop_signals_held

_logger = logging.getLogger("tdmi_pose_launch")

POSE, VIDEO, DETECTOR, RECORDER = "tdmi_pose", "tdmi_video_publisher", "tdmi_detector", "tdmi_recorder"
# node name -> (installed executable that pose.launch.py runs, module that tdmi-pose runs)
PROGRAMS = {
    POSE: ("pose_node", "tdmi_ros.node"),
    VIDEO: ("video_publisher", "tdmi_ros.video_publisher"),
    DETECTOR: ("detector_node", "tdmi_ros.detector_node"),
    RECORDER: ("recorder", "tdmi_ros.recorder"),
}
DEFAULT_CONFIG = "config/pose.yaml"


@dataclass(frozen=True)
class NodeCommand:
    """One node to start: its name, program, program arguments, parameter file, overrides and namespace."""

    name: str
    args: tuple[str, ...] = ()
    params_file: Path | None = None
    params: dict[str, str] = field(default_factory=dict)
    namespace: str = ""

    @property
    def label(self) -> str:
        """The node's full name (``/front/tdmi_pose`` in a namespace), unique among the started nodes."""
        return f"/{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def executable(self) -> str:
        """The console script installed in ``lib/tdmi_ros`` (``ros2 run tdmi_ros <executable>``)."""
        return PROGRAMS[self.name][0]

    def argv(self, python: str = sys.executable) -> list[str]:
        """``python -m <module> <args> --ros-args [-r __ns:=/NS] [--params-file F] [-p name:=value ...]``."""
        ros_args = ["-r", f"__ns:=/{self.namespace}"] if self.namespace else []
        ros_args += ["--params-file", str(self.params_file)] if self.params_file else []
        ros_args += [arg for name, value in self.params.items() for arg in ("-p", f"{name}:={value}")]
        return [python, "-m", PROGRAMS[self.name][1], *self.args, *(["--ros-args", *ros_args] if ros_args else [])]


def camera_list(cameras: list[str]) -> str:
    """The ``cameras`` parameter as a ROS command-line (and launch argument) value: ``[front, left]``."""
    return "[" + ", ".join(cameras) + "]"


def default_config_path() -> Path:
    """``config/pose.yaml`` in the working directory, else the installed copy (colcon or pip share folder)."""
    try:
        return resolve_data_file(DEFAULT_CONFIG, "config")
    except FileNotFoundError:
        return Path(DEFAULT_CONFIG)  # load_config reports it missing


def node_parameters(config: dict[str, Any], node: str) -> dict[str, Any]:
    """The ``ros__parameters`` a ROS parameter file gives node ``node`` (no namespace).

    Keys may be the bare name, ``/name``, ``/**/name`` (the ROS convention, any namespace) or ``/**``
    (every node); later sections win, as in rcl.
    """
    params: dict[str, Any] = {}
    for key, section in config.items():
        if key in (node, f"/{node}", f"/**/{node}", "/**") and isinstance(section, dict):
            params.update(section.get("ros__parameters") or {})
    return params


def load_config(path: str | Path) -> dict[str, Any]:
    """Read the YAML parameter file (must give the pose node ``ros__parameters``)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not node_parameters(data, POSE):
        raise ValueError(f"{path}: expected a ROS parameter file with a '/**/{POSE}: ros__parameters:' section")
    return data


def node_commands(
    config_path: str | Path,
    video: str = "",
    detector: bool = False,
    allow_untrained: bool = False,
    record: str = "",
    pose_overrides: dict[str, str] | None = None,
    cameras: list[str] | None = None,
    node_per_camera: bool = False,
) -> list[NodeCommand]:
    """The nodes that ``pose.launch.py`` starts for the same arguments, in its order.

    Args:
        config_path: the parameter YAML of every node (``config/pose.yaml``).
        video: a file or camera index: start the video publisher on it (``source``).
        detector: start the person detector.
        allow_untrained: the pose node's ``runtime.allow_untrained`` (always set, as the launch argument is).
        record: a JSON-lines path: start the recorder on the pose topic.
        pose_overrides: more pose node parameters (tdmi-pose's ``-p`` and ``--weights``).
        cameras: camera namespaces (topics ``<camera>/image``, ``<camera>/detections`` → ``<camera>/poses``):
            one pose node serves them all (its ``cameras`` parameter, as the launch argument ``cameras``) ...
        node_per_camera: ... or one pose node per camera, in that camera's namespace (as including
            ``pose.launch.py`` once per camera under ``PushRosNamespace`` does).
    """
    load_config(config_path)  # a clear error now rather than four failing nodes
    config = Path(config_path).resolve()
    commands = []
    if video:
        commands.append(NodeCommand(VIDEO, params_file=config, params={"source": video}))
    if detector:
        commands.append(NodeCommand(DETECTOR, params_file=config))
    pose_params = {"runtime.allow_untrained": str(allow_untrained).lower(), **(pose_overrides or {})}
    if cameras and node_per_camera:
        commands += [NodeCommand(POSE, params_file=config, params=pose_params, namespace=c) for c in cameras]
    else:
        if cameras:
            pose_params["cameras"] = camera_list(cameras)
        commands.append(NodeCommand(POSE, params_file=config, params=pose_params))
    if record:
        commands.append(NodeCommand(RECORDER, args=("--output", record)))
    return commands



class ProcessGroup:
    """Children started in their own sessions (so a terminal's Ctrl-C reaches them only through us)."""

    def __init__(self, shutdown_timeout_s: float = 10.0) -> None:
        self.shutdown_timeout_s = shutdown_timeout_s
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopping = False

    def start(self, commands: list[NodeCommand]) -> None:
        for cmd in commands:
            _logger.info("starting %s: %s", cmd.label, " ".join(cmd.argv()))
            with stop_signals_held():  # a signal during the child's start-up waits for its handlers
                self.procs[cmd.label] = subprocess.Popen(
                    cmd.argv(), start_new_session=True, env={**os.environ, PARENT_PID_ENV: str(os.getpid())})

    def poll(self) -> dict[str, int]:
        """Exit codes of the children that have finished."""
        return {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}

    def stop(self) -> None:
        """SIGINT every running child, then SIGTERM, then SIGKILL after the timeout."""
        self.stopping = True
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            running = [p for p in self.procs.values() if p.poll() is None]
            if not running:
                return
            for p in running:
                p.send_signal(sig)
            deadline = time.monotonic() + (self.shutdown_timeout_s if sig != signal.SIGKILL else 5.0)
            while time.monotonic() < deadline and any(p.poll() is None for p in running):
                time.sleep(0.05)
            if sig != signal.SIGINT or any(p.poll() is None for p in running):
                _logger.warning("children still running after %s", signal.Signals(sig).name)


def run(commands: list[NodeCommand], stop: StopRequest, exit_when_video_ends: bool = False, linger_s: float = 2.0,
        shutdown_timeout_s: float = 10.0) -> int:
    """Start ``commands`` and supervise them until ``stop`` (a signal), a failure, or the end of the video."""
    group = ProcessGroup(shutdown_timeout_s)
    essential = {cmd.label for cmd in commands if cmd.name != VIDEO}  # their end ends everything
    code = 0
    try:
        group.start(commands)
        video_done_at: float | None = None
        while not stop.requested:
            done = group.poll()
            failed = {n: c for n, c in done.items() if c != 0}
            if failed:
                name, code = next(iter(failed.items()))
                _logger.error("%s exited with code %d; stopping the others", name, code)
                break
            if essential & done.keys():
                _logger.info("%s exited; stopping the others", ", ".join(n for n in done if n != VIDEO))
                break
            if VIDEO in done and exit_when_video_ends:
                video_done_at = video_done_at or time.monotonic()
                if time.monotonic() - video_done_at > linger_s:
                    _logger.info("video finished; stopping")
                    break
            stop.wait(0.1)
    finally:
        group.stop()
    ended_badly = {name: c for name, c in group.poll().items() if c != 0}
    if code == 0 and ended_badly:
        name, code = next(iter(ended_badly.items()))
        _logger.error("%s ended with code %d while stopping", name, code)
    return code if code >= 0 else 128 - code  # killed by signal N -> 128 + N, as shells report it


def main(argv: list[str] | None = None) -> int:
    """``tdmi-pose``: start the nodes and supervise them until SIGINT/SIGTERM (exit 0) or a failure."""
    return run_program(lambda stop: _main(argv, stop))


def _main(argv: list[str] | None, stop: StopRequest) -> int:
    parser = argparse.ArgumentParser(prog="tdmi-pose", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", default=None,
                        help="parameter YAML (pose node + companions); default: ./config/pose.yaml, else the installed one")
    parser.add_argument("--video", default="", help="video file or camera index: also start the video publisher")
    parser.add_argument("--detector", action="store_true", help="also start the person detector")
    parser.add_argument("--allow-untrained", action="store_true",
                        help="TESTING ONLY: run an untrained model when no weights exist (runtime.allow_untrained)")
    parser.add_argument("--record", default="", help="also record the poses to this JSON-lines file")
    parser.add_argument("--weights", help="override runtime.weights of the pose node")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra pose node parameter, e.g. runtime.backend:=onnxruntime (repeatable)")
    parser.add_argument("--cameras", nargs="+", metavar="NAMESPACE",
                        help="serve these cameras (<camera>/image + <camera>/detections -> <camera>/poses) in one node, "
                        "persons batched across cameras")
    parser.add_argument("--node-per-camera", action="store_true", help="with --cameras: one pose node per camera")
    parser.add_argument("--exit-when-video-ends", action="store_true", help="stop everything after the video ends")
    parser.add_argument("--linger-s", type=float, default=2.0, help="with --exit-when-video-ends: wait this long")
    parser.add_argument("--shutdown-timeout-s", type=float, default=10.0, help="SIGINT grace before SIGTERM")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [tdmi-pose]: %(message)s")
    overrides: dict[str, str] = {}
    for item in args.param:
        name, sep, value = item.partition(":=")
        if not sep:
            parser.error(f"-p expects NAME:=VALUE, got {item!r}")
        overrides[name] = value
    if args.weights:
        overrides["runtime.weights"] = args.weights
    try:
        commands = node_commands(args.config or default_config_path(), args.video, args.detector,
                                 args.allow_untrained, args.record, overrides, args.cameras, args.node_per_camera)
    except (FileNotFoundError, ValueError) as e:
        _logger.error("%s", e)
        return 2
    if stop.requested:
        return 0
    return run(commands, stop, args.exit_when_video_ends, args.linger_s, args.shutdown_timeout_s)


if __name__ == "__main__":
    sys.exit(main())
