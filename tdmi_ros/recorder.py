"""Record ``/poses`` (tdmi_msgs/Skeleton2DArray) to JSON lines, one message per line.

Each line: ``{"stamp_ns": int, "frame_id": str, "received_ns": int, "skeletons": [{"track_id", "box",
"box_score", "keypoints": [[x, y, score] * 17], "score"}]}``.

Run: ``python -m tdmi_ros.recorder --output poses.jsonl [--topic poses] [--max-messages N] [--duration-s S]``.
"""
from __future__ import annotations

if __name__ == "__main__":  # a program: a signal during the imports below waits for main (tdmi_ros.shutdown)
    from tdmi_ros.shutdown import hold_stop_signals

    hold_stop_signals()

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.utilities import remove_ros_args

from tdmi_ros.conversions import stamp_to_ns
from tdmi_ros.safety import CallbackGuard, NodeLog
from tdmi_ros.shutdown import StopRequest, run_node, run_program, spin_until_stopped


def skeleton_array_to_record(msg: Any, received_ns: int) -> dict[str, Any]:
    """One ``Skeleton2DArray`` -> a JSON-ready dict (keypoints as [x, y, score] rows)."""
    return {
        "stamp_ns": stamp_to_ns(msg.header.stamp),
        "frame_id": msg.header.frame_id,
        "received_ns": received_ns,
        "skeletons": [
            {
                "track_id": int(s.track_id),
                "box": {"center_x": s.box.center_x, "center_y": s.box.center_y,
                        "size_x": s.box.size_x, "size_y": s.box.size_y},
                "box_score": float(s.box_score),
                "keypoints": [[float(k.x), float(k.y), float(k.score)] for k in s.keypoints],
                "score": float(s.score),
            }
            for s in msg.skeletons
        ],
    }


class PoseRecorder:
    """Subscribes to a Skeleton2DArray topic on ``node`` and appends each message to ``out``."""

    def __init__(self, node: Any, topic: str, out: TextIO) -> None:
        from tdmi_msgs.msg import Skeleton2DArray

        self.out = out
        self.count = 0
        self.guard = CallbackGuard(NodeLog(node.get_logger()))
        self.sub = node.create_subscription(
            Skeleton2DArray, topic, self.guard.wrap("poses", self._on_poses),
            # transient local: the node's last messages still arrive if this reader matched after they were sent
            QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL),
        )

    def _on_poses(self, msg: Any) -> None:
        self.out.write(json.dumps(skeleton_array_to_record(msg, time.time_ns()), allow_nan=True) + "\n")
        self.out.flush()
        self.count += 1


def main(argv: list[str] | None = None) -> int:
    """Record until the limits or SIGINT/SIGTERM (exit 0)."""
    return run_program(lambda stop: _run(list(sys.argv if argv is None else argv), stop))


def _run(argv: list[str], stop: StopRequest) -> int:
    parser = argparse.ArgumentParser(prog="recorder", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--output", type=Path, required=True, help="JSON lines file to write")
    parser.add_argument("--topic", default="poses", help="Skeleton2DArray topic")
    parser.add_argument("--max-messages", type=int, default=0, help="stop after this many (0 = no limit)")
    parser.add_argument("--duration-s", type=float, default=0.0, help="stop after this long (0 = no limit)")
    args = parser.parse_args(remove_ros_args(argv)[1:])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    return run_node(argv, stop, "tdmi_recorder", lambda: rclpy.create_node("tdmi_recorder"),
                    lambda node: _record(node, args, stop))


def _record(node: Any, args: argparse.Namespace, stop: StopRequest) -> None:
    """Write every message to ``args.output`` until the limits or a stop."""
    deadline = time.monotonic() + args.duration_s if args.duration_s > 0 else float("inf")
    with open(args.output, "w") as out:
        recorder = PoseRecorder(node, args.topic, out)

        def done() -> bool:
            return bool(args.max_messages and recorder.count >= args.max_messages) or time.monotonic() > deadline

        spin_until_stopped(node, stop, done)


if __name__ == "__main__":
    sys.exit(main())
