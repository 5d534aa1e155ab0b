"""``tdmi-node-bench``: image → ``/poses`` latency and throughput of pose node processes over real DDS.

This process plays the cameras and detectors: for each camera it publishes real video frames
(``sensor_msgs/Image``, stamped with the time of publishing) and person boxes for them
(``PersonDetectionArray`` without track ids: the node tracks), at a fixed rate, and it subscribes to
each camera's ``poses``. Latency is the receive time of a frame's ``/poses`` message minus its image
stamp (one clock: everything runs on this machine); throughput is answered frames per second.
Node processes start through :func:`tdmi_ros.launch_cli.node_commands` (what ``tdmi-pose`` starts),
with the config's pose section plus overrides, on loopback DDS in a private domain.

Two experiments:

- ``windows``: one camera, one node, per window kind (``symmetric``: the model's weights;
  ``causal``: ``<model>_causal.pt``; ``single_frame``: ``<model>_single_frame.pt`` run as a single-frame
  twin) and per rate. A missing weights file is replaced by the untrained model of the same
  architecture and window (same compute; marked UNTRAINED in the results).
- ``cameras``: K cameras served by one node (``cameras`` parameter, persons batched across cameras)
  against K separate nodes, for each K.

Persons are synthetic walkers (fixed count, moving a few pixels per frame) drawn on no image: boxes
lie over the real frames of the video. The first ``--warmup-s`` of every run are not measured.

    python -m tdmi_ros.node_bench windows --rates 10 30 --persons 3 --seconds 20 --out outputs/node-bench
    python -m tdmi_ros.node_bench cameras --cameras 1 2 4 --rate 10 --persons 2 --seconds 20 --out outputs/node-bench
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tdmi_ros.demo import use_loopback_dds
from tdmi_ros.launch_cli import ProcessGroup, default_config_path, node_commands

_logger = logging.getLogger("tdmi_node_bench")

REPO_ROOT = Path(__file__).resolve().parents[1]
WINDOW_KINDS = ("symmetric", "causal", "single_frame")


@dataclass
class CellResult:
    """One run: which nodes served which cameras, at what rate, and what came back."""

    name: str
    cameras: int
    nodes: int
    rate_hz: float
    persons: int
    source: str
    offered_hz: float = 0.0
    measured_frames: int = 0
    answered_frames: int = 0
    answered_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    per_camera_answered: list[int] = field(default_factory=list)
    # from each node's last /diagnostics: one inference step (p50, ms) and frames skipped while behind
    node_inference_ms_p50: list[float] = field(default_factory=list)
    node_skipped: list[int] = field(default_factory=list)


class Walkers:
    """``persons`` boxes walking right across a ``width`` x ``height`` frame (wrapping around)."""

    def __init__(self, persons: int, width: int, height: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.width, self.height = width, height
        self.size = np.array([0.08 * width, 0.25 * height])
        self.start = np.stack([rng.uniform(0, width, persons), rng.uniform(0.1 * height, 0.65 * height, persons)], 1)
        self.speed = rng.uniform(2.0, 5.0, persons)

    def boxes(self, frame: int) -> np.ndarray:
        """``[persons, 4]`` x1 y1 x2 y2 of frame ``frame``."""
        x = (self.start[:, 0] + self.speed * frame) % (self.width - self.size[0])
        top_left = np.stack([x, self.start[:, 1]], 1)
        return np.concatenate([top_left, top_left + self.size], 1)


def load_frames(video: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of ``video`` (BGR)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise FileNotFoundError(f"no frames in {video}")
    return frames


def run_cell(name: str, commands: list[Any], cameras: list[str], rate_hz: float, persons: int, seconds: float,
             warmup_s: float, frames: list[np.ndarray], source: str, start_timeout_s: float = 600.0) -> CellResult:
    """Start ``commands``, play ``cameras`` at ``rate_hz`` until ``seconds`` are measured, stop them."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from tdmi_msgs.msg import PersonDetectionArray, Skeleton2DArray

    from tdmi_ros import conversions as conv
    from tdmi_ros.diagnostics import diagnostics_to_dict

    result = CellResult(name, len(cameras), len(commands), rate_hz, persons, source)
    group = ProcessGroup(shutdown_timeout_s=10.0)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("tdmi_node_bench", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    sent: dict[tuple[int, int], float] = {}  # (camera, stamp ns) -> published, for measured frames
    received: dict[tuple[int, int], float] = {}
    outputs = [0] * len(cameras)
    diagnostics: dict[str, dict[str, str]] = {}  # node status name -> its last report

    def on_diagnostics(msg: Any) -> None:
        if msg.status and msg.status[0].name.endswith(": pipeline"):
            diagnostics[msg.status[0].name] = diagnostics_to_dict(msg)

    def on_poses(camera: int, msg: Any) -> None:
        now = time.time()
        outputs[camera] += 1
        key = (camera, conv.stamp_to_ns(msg.header.stamp))
        if key in sent:
            received[key] = now

    def topic(camera: str, name: str) -> str:
        return f"{camera}/{name}" if camera else name

    try:
        pubs = [(node.create_publisher(Image, topic(c, "image"), qos),
                 node.create_publisher(PersonDetectionArray, topic(c, "detections"), qos)) for c in cameras]
        for i, c in enumerate(cameras):
            node.create_subscription(Skeleton2DArray, topic(c, "poses"), lambda m, i=i: on_poses(i, m), qos)
        node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 50)
        group.start(commands)
        deadline = time.monotonic() + start_timeout_s
        # a pose node subscribes once its model is loaded: wait until every camera's input is matched
        while not all(image.get_subscription_count() and det.get_subscription_count() for image, det in pubs):
            if time.monotonic() > deadline or group.poll():
                raise RuntimeError(f"{name}: pose nodes did not come up (exited: {group.poll()})")
            executor.spin_once(timeout_sec=0.1)
        height, width = frames[0].shape[:2]
        walkers = [Walkers(persons, width, height, seed=k) for k in range(len(cameras))]
        messages = [conv.bgr_to_image_msg(f, Header()) for f in frames]
        start = time.monotonic()
        measure_from, measure_until = start + warmup_s, start + warmup_s + seconds
        published = measured = 0
        while True:
            now = time.monotonic()
            if now >= measure_until + 2.0 or (now >= measure_until and len(received) == len(sent)):
                break  # all measured frames answered (or given up on: the node dropped them)
            for k, (image_pub, det_pub) in enumerate(pubs):
                stamp_s = time.time()
                msg = messages[published % len(messages)]
                msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp_s), int((stamp_s % 1) * 1e9)
                msg.header.frame_id = cameras[k] or "camera"
                det = conv.boxes_to_detection_msg(walkers[k].boxes(published), np.full(persons, 0.9), msg.header)
                image_pub.publish(msg)
                det_pub.publish(det)
                if measure_from <= now < measure_until:
                    sent[(k, conv.stamp_to_ns(msg.header.stamp))] = stamp_s
            if measure_from <= now < measure_until:
                measured += 1
            published += 1
            next_tick = start + published / rate_hz
            while (left := next_tick - time.monotonic()) > 0:
                executor.spin_once(timeout_sec=left)
        latencies = np.array([(received[k] - sent[k]) * 1e3 for k in received])
        result.offered_hz = measured / seconds
        result.measured_frames = len(sent)
        result.answered_frames = len(received)
        result.answered_per_s = len(received) / seconds
        result.per_camera_answered = [sum(1 for c, _ in received if c == k) for k in range(len(cameras))]
        reports = list(diagnostics.values())
        result.node_inference_ms_p50 = [float(d.get("latency_ms/inference/p50", "nan")) for d in reports]
        result.node_skipped = [int(d.get("drop/compute_behind", 0)) for d in reports]
        if latencies.size:
            result.latency_ms = {q: float(np.percentile(latencies, int(q[1:]))) for q in ("p50", "p90", "p99")}
            result.latency_ms["mean"] = float(latencies.mean())
    finally:
        group.stop()
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
    return result


def window_variant(kind: str, model: str, weights_dir: Path, work_dir: Path) -> tuple[dict[str, str], str]:
    """Pose node overrides that serve ``model`` with a ``kind`` window, and what they run (weights or UNTRAINED)."""
    weights = weights_dir / {"symmetric": f"{model}.pt", "causal": f"{model}_causal.pt",
                             "single_frame": f"{model}_single_frame.pt"}[kind]
    params = {"runtime.single_frame": "true" if kind == "single_frame" else "false"}
    if weights.is_file():
        return {**params, "runtime.weights": str(weights.resolve()), "runtime.allow_untrained": "false"}, weights.name
    config = work_dir / f"{model}_{kind}.yaml"  # the same architecture with this window, untrained
    config.write_text(f"base: {model}\nwindow: {'causal' if kind == 'causal' else 'symmetric'}\n", encoding="utf-8")
    return ({**params, "runtime.weights": '""', "runtime.allow_untrained": "true", "runtime.model": str(config)},
            f"UNTRAINED {model} ({kind})")


def markdown(results: list[CellResult]) -> str:
    lines = ["| run | cameras | nodes | persons/camera | rate Hz | offered Hz | answered frames/s (all cameras) | "
             "answered | p50 ms | p90 ms | p99 ms | node step p50 ms | skipped (behind) | model |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lat = r.latency_ms
        lines.append(
            f"| {r.name} | {r.cameras} | {r.nodes} | {r.persons} | {r.rate_hz:g} | {r.offered_hz:.1f} | "
            f"{r.answered_per_s:.1f} | {100 * r.answered_frames / max(r.measured_frames, 1):.0f} % | "
            f"{lat.get('p50', float('nan')):.0f} | {lat.get('p90', float('nan')):.0f} | "
            f"{lat.get('p99', float('nan')):.0f} | {' / '.join(f'{v:.0f}' for v in r.node_inference_ms_p50)} | "
            f"{sum(r.node_skipped)} | {r.source} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tdmi-node-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=("windows", "cameras"))
    parser.add_argument("--config", type=Path, default=None, help="parameter YAML (default: config/pose.yaml)")
    parser.add_argument("--model", default="tdmi_movenet", help="model config; weights are <weights-dir>/<model>*.pt")
    parser.add_argument("--weights-dir", type=Path, default=REPO_ROOT / "weights")
    parser.add_argument("--windows", nargs="+", default=list(WINDOW_KINDS), choices=WINDOW_KINDS)
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0], help="windows: camera rates (Hz)")
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4], help="cameras: camera counts")
    parser.add_argument("--rate", type=float, default=10.0, help="cameras: the rate of every camera (Hz)")
    parser.add_argument("--persons", type=int, default=3, help="walkers per camera")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per run")
    parser.add_argument("--warmup-s", type=float, default=5.0, help="unmeasured time at the start of a run")
    parser.add_argument("--video", type=Path, default=REPO_ROOT / "assets" / "videos" / "vtest.avi")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="pose node parameter for every run, e.g. runtime.backend:=onnxruntime (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("outputs/node-bench"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [tdmi-node-bench]: %(message)s")
    use_loopback_dds()
    os.chdir(REPO_ROOT)  # the YAML's relative paths are relative to the checkout
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    config = args.config or default_config_path()
    base = dict(item.split(":=", 1) for item in args.param)
    frames = load_frames(args.video, 50)
    results: list[CellResult] = []
    if args.experiment == "windows":
        for kind in args.windows:
            params, source = window_variant(kind, args.model, args.weights_dir, args.out)
            for rate in args.rates:
                commands = node_commands(config, detector=False, pose_overrides={**base, **params})
                results.append(run_cell(f"{kind} @ {rate:g} Hz", commands, [""], rate, args.persons, args.seconds,
                                        args.warmup_s, frames, source))
                _logger.info("%s", results[-1])
    else:
        params, source = window_variant("symmetric", args.model, args.weights_dir, args.out)
        for k in args.cameras:
            cameras = [f"cam{i}" for i in range(k)]
            for per_camera in (False, True):
                commands = node_commands(config, detector=False, pose_overrides={**base, **params}, cameras=cameras,
                                         node_per_camera=per_camera)
                name = f"{k} camera(s), {'one node each' if per_camera else 'one node'}"
                results.append(run_cell(name, commands, cameras, args.rate, args.persons, args.seconds,
                                        args.warmup_s, frames, source))
                _logger.info("%s", results[-1])
    table = markdown(results)
    report = {"experiment": args.experiment, "argv": sys.argv if argv is None else argv, "machine": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "load_average_end": os.getloadavg(), "parameters": base,
              "results": [asdict(r) for r in results]}
    (args.out / f"{args.experiment}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (args.out / f"{args.experiment}.md").write_text(table + "\n", encoding="utf-8")
    print(table)  # CLI output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
