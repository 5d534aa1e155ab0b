"""``tdmi-node-overhead``: the pose node's own cost per frame, old code (from git) against new, in one run.

Everything the node does for a frame except the network is timed: image and detection callbacks
(decode, validation, stamp pairing), the worker (tracking, crops, normalisation, feature windows,
heatmap decoding) and the publishers (``/poses`` and markers). The backend is replaced by a stub that
returns preallocated features and heatmaps of the model's shapes and times itself; its time is
subtracted. Frames go one at a time: each is timed from the image callback until its outputs (or,
for the first ``delta`` frames, its estimator push) are done.

Each measurement runs in a child process (old and new code cannot share one interpreter): the old
tree is ``git archive <base>`` in a temporary directory, the new one this checkout. Children for old
and new alternate, round after round, so both see the same machine load; the report gives medians
and old/new ratios.

    python -m tdmi_ros.overhead_bench --base 03f5444 --persons 1 5 --frames 200 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
PRE_REDESIGN_COMMIT = "03f5444"  # the last commit before issue 14's runtime redesign
IMAGE_HW = (720, 1280)


# ---------------------------------------------------------------------------------------------- child
class StubBackend:
    """Stands in for the network: preallocated outputs of the right shapes, its own time counted."""

    def __init__(self, model_cfg: Any, max_batch: int = 256) -> None:
        import torch

        h, w = (int(v) for v in model_cfg.heatmap_size_hw)
        generator = torch.Generator().manual_seed(0)
        self.name = "stub"
        self.device = torch.device("cpu")
        self.input_dtype = torch.float32
        self.max_batch = None
        self._features = torch.rand((max_batch, 4, int(model_cfg.width), h, w), generator=generator)
        self._heatmaps = torch.rand((max_batch, int(model_cfg.num_keypoints), h, w), generator=generator)
        self.seconds = 0.0

    def backbone(self, crops: Any) -> Any:
        start = time.perf_counter()
        out = self._features[: crops.shape[0]]
        self.seconds += time.perf_counter() - start
        return out

    def temporal_head(self, motion: Any, visual: Any) -> Any:
        start = time.perf_counter()
        out = self._heatmaps[: motion.shape[0]]
        self.seconds += time.perf_counter() - start
        return out


def _node_parameters(tree: Path) -> list[Any]:
    """Overrides for either parameter schema: the old flat one or the nested ``runtime.*`` one."""
    from rclpy.parameter import Parameter

    from tdmi_ros.params import PoseNodeConfig

    weights = str(tree / "weights" / "tdmi_lite.pt")
    common = {"queue_depth": 1000, "max_frame_age_s": 0.0, "diagnostics_period_s": 3600.0,
              "pairing_max_wait_s": 60.0, "max_persons": 16}
    if "weights_path" in PoseNodeConfig.__dataclass_fields__:  # the schema before issue 14
        model = {"weights_path": weights, "num_threads": 1}
    else:
        model = {"runtime.weights": weights, "runtime.num_threads": 1}
    return [Parameter(name, value=value) for name, value in {**common, **model}.items()]


def _frames(persons: int, count: int, seed: int = 0) -> tuple[list[Any], list[Any]]:
    """Image and detection messages: a textured 1280x720 bgr8 frame, ``persons`` boxes jittering ~1 px."""
    import numpy as np
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from tdmi_msgs.msg import BoundingBox2D, PersonDetection, PersonDetectionArray

    rng = np.random.default_rng(seed)
    h, w = IMAGE_HW
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    cols = int(np.ceil(np.sqrt(persons * w / h)))
    rows = int(np.ceil(persons / cols))
    images, detections = [], []
    for i in range(count):
        header = Header(frame_id="cam")
        header.stamp.sec, header.stamp.nanosec = 1000 + i // 30, (i % 30) * 33_333_333
        image = Image(header=header, height=h, width=w, encoding="bgr8", is_bigendian=0, step=w * 3)
        image.data = np.roll(base, 2 * i, axis=1).tobytes()
        det = PersonDetectionArray(header=header)
        for k in range(persons):
            r, c = divmod(k, cols)
            jitter = rng.uniform(-1.0, 1.0, 4)
            box = BoundingBox2D(center_x=float((c + 0.5) * w / cols + jitter[0]),
                                center_y=float((r + 0.5) * h / rows + jitter[1]),
                                size_x=float(0.6 * w / cols + jitter[2]), size_y=float(0.8 * h / rows + jitter[3]))
            det.detections.append(PersonDetection(box=box, score=0.9, track_id=-1))
        images.append(image)
        detections.append(det)
    return images, detections


def run_child(tree: Path, persons: int, frames: int, out: Path) -> None:
    """Time ``frames`` frames through the node of ``tree`` (imported from ``sys.path``) and write JSON."""
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn

    from tdmi_ros.node import PoseNode

    rclpy.init()
    node = PoseNode(parameter_overrides=_node_parameters(tree))
    for step in (node.trigger_configure, node.trigger_activate):
        if step() != TransitionCallbackReturn.SUCCESS:
            raise RuntimeError(f"the pose node of {tree} did not start: {node.failure}")
    estimator = node.pipeline.estimator
    stub = StubBackend(estimator.model_cfg)
    estimator.backend = stub
    delta = int(estimator.delta)

    done = threading.Event()
    waiting_for = {"name": ""}
    tick = node.stats.tick

    def tick_and_signal(name: str, *args: Any, **kwargs: Any) -> None:
        tick(name, *args, **kwargs)
        if name == waiting_for["name"]:
            done.set()

    node.stats.tick = tick_and_signal
    warmup = 2 * delta + 3
    images, detections = _frames(persons, warmup + frames)
    wall_ms, cpu_ms = [], []
    for i, (image, det) in enumerate(zip(images, detections)):
        # the frame is done once its push returned (first delta frames) or frame i - delta was published
        waiting_for["name"] = "poses" if i >= delta else "processed"
        done.clear()
        stub_before = stub.seconds
        cpu_start, start = time.process_time(), time.perf_counter()
        node._on_image(image)
        node._on_detections(det)
        if not done.wait(60.0):
            raise RuntimeError(f"frame {i} was not processed within 60 s")
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        stub_s = stub.seconds - stub_before
        if i >= warmup:
            wall_ms.append((elapsed - stub_s) * 1e3)
            cpu_ms.append((cpu - stub_s) * 1e3)
    node._teardown_active()
    node.destroy_node()
    rclpy.try_shutdown()
    out.write_text(json.dumps({"persons": persons, "wall_ms": wall_ms, "cpu_ms": cpu_ms}))


# --------------------------------------------------------------------------------------------- parent
def _checkout(base: str, directory: Path) -> Path:
    """The tree of commit ``base`` (``git archive``) in ``directory``."""
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", base], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    return directory


def _child_env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(REPO_ROOT / "config" / "fastdds-loopback.xml")
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SYSTEM_DEFAULT"  # LOCALHOST would replace the loopback profile
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    env["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 101))
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="tdmi_overhead_log_"))
    return env


def _measure(tree: Path, persons: int, frames: int, work: Path) -> dict[str, Any]:
    out = work / f"child-{time.monotonic_ns()}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(tree), "--persons", str(persons),
           "--frames", str(frames), "--child-out", str(out)]
    proc = subprocess.run(cmd, cwd=tree, env=_child_env(tree), capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"measurement of {tree} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())


def compare(base: str, persons: list[int], frames: int, rounds: int) -> dict[str, Any]:
    """Median per-frame overhead (ms, wall and CPU) of the old and new node, and old/new ratios."""
    samples: dict[tuple[str, int], dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="tdmi_overhead_") as tmp:
        work = Path(tmp)
        (work / "old_tree").mkdir()
        trees = {"old": _checkout(base, work / "old_tree"), "new": REPO_ROOT}
        for r in range(rounds):
            for n in persons:
                order = ("old", "new") if r % 2 == 0 else ("new", "old")
                for version in order:
                    result = _measure(trees[version], n, frames, work)
                    cell = samples.setdefault((version, n), {"wall_ms": [], "cpu_ms": []})
                    cell["wall_ms"] += result["wall_ms"]
                    cell["cpu_ms"] += result["cpu_ms"]
                    print(f"round {r + 1}/{rounds}: {version} code, {n} person(s): median "
                          f"{statistics.median(result['wall_ms']):.2f} ms wall", file=sys.stderr)
    report: dict[str, Any] = {"base": base, "frames_per_child": frames, "rounds": rounds, "image_hw": IMAGE_HW,
                              "load_average_1m": os.getloadavg()[0], "cells": []}
    for n in persons:
        old, new = samples[("old", n)], samples[("new", n)]
        cell = {"persons": n}
        for key in ("wall_ms", "cpu_ms"):
            cell[f"old_{key}"] = round(statistics.median(old[key]), 3)
            cell[f"new_{key}"] = round(statistics.median(new[key]), 3)
            cell[f"ratio_{key.split('_')[0]}"] = round(cell[f"old_{key}"] / cell[f"new_{key}"], 2)
        report["cells"].append(cell)
    return report


def _table(report: dict[str, Any]) -> str:
    head = f"{'persons':>7} {'old ms':>8} {'new ms':>8} {'old/new':>8}   {'old cpu ms':>10} {'new cpu ms':>10} {'old/new':>8}"
    lines = [head, "-" * len(head)]
    for c in report["cells"]:
        lines.append(f"{c['persons']:>7} {c['old_wall_ms']:>8.2f} {c['new_wall_ms']:>8.2f} {c['ratio_wall']:>7.2f}x"
                     f"   {c['old_cpu_ms']:>10.2f} {c['new_cpu_ms']:>10.2f} {c['ratio_cpu']:>7.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``tdmi-node-overhead``."""
    parser = argparse.ArgumentParser(prog="tdmi-node-overhead", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--base", default=PRE_REDESIGN_COMMIT, help="git commit of the old code")
    parser.add_argument("--persons", type=int, nargs="+", default=[1, 5], help="persons per frame")
    parser.add_argument("--frames", type=int, default=200, help="timed frames per child process")
    parser.add_argument("--rounds", type=int, default=3, help="child processes per (code, persons)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report as JSON here")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        # run as a script from the other tree's directory: import tdmi_ros from PYTHONPATH, not from here
        here = str(Path(__file__).resolve().parent)
        sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != here]
        run_child(args.child, args.persons[0], args.frames, args.child_out)
        return 0
    if args.frames < 1 or args.rounds < 1 or any(p < 1 for p in args.persons):
        parser.error("--frames, --rounds and --persons must be >= 1")
    report = compare(args.base, args.persons, args.frames, args.rounds)
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"pose node overhead per frame (backend stubbed), median of {args.rounds} x {args.frames} frames, "
          f"old = {args.base}, new = this checkout")  # CLI output
    print(_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
