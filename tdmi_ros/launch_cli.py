"""``tdmi-pose``: start the pose node and its companions from one YAML, as ``pose.launch.py`` does.

For pip installs (no ``ros2 launch``). Every node runs as a child process with
``--ros-args --params-file <config>``; which companions start is read from the same YAML
(``enabled``) or forced from the command line. :func:`node_commands` is shared with
``launch/pose.launch.py`` so both start the same processes.

Signals: SIGINT/SIGTERM (once or more, at any moment) are forwarded to the children as SIGINT;
children still running after ``--shutdown-timeout-s`` get SIGTERM, then SIGKILL. Children start with
SIGINT/SIGTERM held until their own handlers are in place (:mod:`tdmi_ros.shutdown`), so a signal
during their start-up is not lost and does not kill them. If the pose node (or a companion) exits
with an error, the others are stopped and ``tdmi-pose`` exits with that code; so it does if a
child ends badly while being stopped.

    tdmi-pose --config config/pose.yaml --video assets/videos/vtest.avi --detector
"""
from __future__ import annotations

if __name__ == "__main__":  # a program: a signal during the imports below waits for main (tdmi_ros.shutdown)
    from tdmi_ros.shutdown import hold_stop_signals

    hold_stop_signals()

import argparse
import json
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tdmi_ros.shutdown import StopRequest, run_program, stop_signals_held

_logger = logging.getLogger("tdmi_pose_launch")

POSE, VIDEO, DETECTOR, RECORDER = "tdmi_pose", "tdmi_video_publisher", "tdmi_detector", "tdmi_recorder"
MODULES = {
    POSE: "tdmi_ros.node",
    VIDEO: "tdmi_ros.video_publisher",
    DETECTOR: "tdmi_ros.detector_node",
    RECORDER: "tdmi_ros.recorder",
}


@dataclass(frozen=True)
class NodeCommand:
    """One process to start: its node name and full argv."""

    name: str
    argv: list[str]


def default_config_path() -> Path:
    """``config/pose.yaml`` in the working directory, else the installed copy (pip or colcon share dir)."""
    local = Path("config/pose.yaml")
    if local.is_file():
        return local
    candidates = [Path(sys.prefix) / "share" / "tdmi_ros" / "config" / "pose.yaml"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("tdmi_ros")) / "config" / "pose.yaml")
    except Exception:  # noqa: BLE001 - no ament index (pip without AMENT_PREFIX_PATH) or package not indexed
        pass
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return local  # load_config reports it missing


def _enabled(config: dict[str, Any], node: str) -> bool:
    return bool(((config.get(node) or {}).get("ros__parameters") or {}).get("enabled", False))


def load_config(path: str | Path) -> dict[str, Any]:
    """Read the YAML parameter file (must map node names to ``ros__parameters``)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or POSE not in data or "ros__parameters" not in (data[POSE] or {}):
        raise ValueError(f"{path}: expected a ROS parameter file with a '{POSE}: ros__parameters:' section")
    return data


def node_commands(
    config_path: str | Path,
    video: str | None = None,
    detector: bool | None = None,
    pose_overrides: dict[str, str] | None = None,
    record: str | None = None,
    python: str = sys.executable,
    cameras: list[str] | None = None,
    node_per_camera: bool = False,
) -> list[NodeCommand]:
    """The processes to start for ``config_path``.

    Args:
        config_path: the YAML with ``tdmi_pose`` (+ optional ``tdmi_video_publisher``, ``tdmi_detector``).
        video: a file/camera for the video publisher (starts it); None = the YAML's ``enabled``.
        detector: force the detector on/off; None = the YAML's ``enabled``.
        pose_overrides: extra ``-p name:=value`` for the pose node.
        record: a JSON-lines path: also start the recorder on the pose topic.
        cameras: camera namespaces (topics ``<camera>/image``, ``<camera>/detections`` → ``<camera>/poses``):
            one pose node serves them all (its ``cameras`` parameter) ...
        node_per_camera: ... or one pose node per camera, in that camera's namespace.
    """
    config = load_config(config_path)
    params = ["--ros-args", "--params-file", str(Path(config_path).resolve())]
    commands = []
    if video is not None or _enabled(config, VIDEO):
        extra = ["-p", f"source:={video}"] if video is not None else []
        commands.append(NodeCommand(VIDEO, [python, "-m", MODULES[VIDEO], *params, *extra]))
    if detector if detector is not None else _enabled(config, DETECTOR):
        commands.append(NodeCommand(DETECTOR, [python, "-m", MODULES[DETECTOR], *params]))
    extra = [arg for k, v in (pose_overrides or {}).items() for arg in ("-p", f"{k}:={v}")]
    if cameras and node_per_camera:
        # a node in a namespace no longer matches the file's `tdmi_pose:` key: its section goes as -p values
        section = [arg for k, v in _flatten(config[POSE]["ros__parameters"]) for arg in ("-p", f"{k}:={json.dumps(v)}")]
        for camera in cameras:
            argv = [python, "-m", MODULES[POSE], "--ros-args", "-r", f"__ns:=/{camera}", *section, *extra]
            commands.append(NodeCommand(f"{POSE}_{camera}", argv))
    else:
        batched = ["-p", f"cameras:={json.dumps(list(cameras))}"] if cameras else []
        commands.append(NodeCommand(POSE, [python, "-m", MODULES[POSE], *params, *extra, *batched]))
    if record is not None:
        topic = str(config[POSE]["ros__parameters"].get("poses_topic", "poses"))
        commands.append(NodeCommand(RECORDER, [python, "-m", MODULES[RECORDER], "--output", record, "--topic", topic]))
    return commands


def _flatten(section: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """A nested parameter mapping as ROS's dotted names (``runtime: {backend: x}`` → ``runtime.backend``)."""
    out: list[tuple[str, Any]] = []
    for name, value in section.items():
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{name}.")
        else:
            out.append((f"{prefix}{name}", value))
    return out


class ProcessGroup:
    """Children started in their own sessions (so a terminal's Ctrl-C reaches them only through us)."""

    def __init__(self, shutdown_timeout_s: float = 10.0) -> None:
        self.shutdown_timeout_s = shutdown_timeout_s
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopping = False

    def start(self, commands: list[NodeCommand]) -> None:
        for cmd in commands:
            _logger.info("starting %s: %s", cmd.name, " ".join(cmd.argv))
            with stop_signals_held():  # a signal during the child's start-up waits for its handlers
                self.procs[cmd.name] = subprocess.Popen(cmd.argv, start_new_session=True)

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
            if any(n.startswith(POSE) for n in done) or DETECTOR in done or RECORDER in done:
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
    parser.add_argument("--video", help="video file or camera index: also start the video publisher")
    det = parser.add_mutually_exclusive_group()
    det.add_argument("--detector", dest="detector", action="store_true", default=None, help="start the detector")
    det.add_argument("--no-detector", dest="detector", action="store_false", help="do not start the detector")
    parser.add_argument("--weights", help="override runtime.weights of the pose node")
    parser.add_argument("--allow-untrained", action="store_true",
                        help="TESTING ONLY: run an untrained model when no weights exist (runtime.allow_untrained)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra pose node parameter, e.g. runtime.backend:=onnxruntime (repeatable)")
    parser.add_argument("--record", help="also record the poses to this JSON-lines file")
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
    if args.allow_untrained:
        overrides["runtime.allow_untrained"] = "true"
    try:
        commands = node_commands(args.config or default_config_path(), args.video, args.detector, overrides, args.record,
                                 cameras=args.cameras, node_per_camera=args.node_per_camera)
    except (FileNotFoundError, ValueError) as e:
        _logger.error("%s", e)
        return 2
    if stop.requested:
        return 0
    return run(commands, stop, args.exit_when_video_ends, args.linger_s, args.shutdown_timeout_s)


if __name__ == "__main__":
    sys.exit(main())
