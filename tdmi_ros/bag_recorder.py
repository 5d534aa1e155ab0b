"""Record topics to a rosbag2 MCAP recording, as ``ros2 bag record -s mcap`` does (no ``ros2 bag`` on pip).

Writes the folder ``--output`` (``metadata.yaml`` + ``<name>_0.mcap``): ``ros2 bag info/play``
read the folder, Foxglove and the ``mcap`` tools the ``.mcap`` file. Each topic is subscribed once
a publisher shows its type (as ``ros2 bag`` does), best effort if any publisher is, else reliable,
and its messages are written as received (serialized CDR, stamped with the receive time). On
SIGINT/SIGTERM the messages already delivered are written and the recording is closed.

    bag_recorder --output run1 poses image detections     # /poses and the node's inputs
    python -m tdmi_ros.bag_recorder --output run1          # /poses only
"""
from __future__ import annotations

if __name__ == "__main__":  # a program: a signal during the imports below waits for main (tdmi_ros.shutdown)
    from tdmi_ros.shutdown import hold_stop_signals

    hold_stop_signals()

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.utilities import remove_ros_args

from tdmi_ros.bag import message_class, typestore
from tdmi_ros.safety import CallbackGuard, NodeLog
from tdmi_ros.shutdown import StopRequest, run_node, run_program, spin_until_stopped

NODE_NAME = "tdmi_bag_recorder"
DISCOVERY_PERIOD_S = 0.1
DRAIN_IDLE_S = 0.1  # at the end, write until no message has arrived for this long


class BagRecorder:
    """Subscribes ``topics`` on ``node`` as they appear and writes every message to ``writer``."""

    def __init__(self, node: Any, topics: list[str], writer: Any) -> None:
        self.node = node
        self.writer = writer
        self.pending = {node.resolve_topic_name(topic): topic for topic in topics}
        self.subs: list[Any] = []
        self.count = 0
        self.guard = CallbackGuard(NodeLog(node.get_logger()))
        self.timer = node.create_timer(DISCOVERY_PERIOD_S, self.guard.wrap("discovery", self._discover))

    def _discover(self) -> None:
        for name, types in self.node.get_topic_names_and_types():
            if name in self.pending:
                self._subscribe(name, types[0])
        if not self.pending:
            self.timer.cancel()

    def _subscribe(self, name: str, msgtype: str) -> None:
        del self.pending[name]
        publishers = self.node.get_publishers_info_by_topic(name)
        best_effort = any(p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in publishers)
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT if best_effort
                         else ReliabilityPolicy.RELIABLE)
        connection = self.writer.add_connection(name, msgtype, typestore=typestore([msgtype]))

        def write(data: bytes) -> None:
            self.writer.write(connection, self.node.get_clock().now().nanoseconds, data)
            self.count += 1

        self.subs.append(self.node.create_subscription(
            message_class(msgtype), name, self.guard.wrap(name, write), qos, raw=True))
        self.node.get_logger().info(f"recording {name} ({msgtype}, {'best effort' if best_effort else 'reliable'})")


def main(argv: list[str] | None = None) -> int:
    """Record until SIGINT/SIGTERM or ``--duration-s`` (exit 0); exit 2 if the output cannot be created."""
    return run_program(lambda stop: _run(list(sys.argv if argv is None else argv), stop))


def _run(argv: list[str], stop: StopRequest) -> int:
    parser = argparse.ArgumentParser(prog="bag_recorder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("topics", nargs="*", default=["poses"], help="topics to record (relative: in the namespace)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="rosbag2 folder to create (must not exist)")
    parser.add_argument("--duration-s", type=float, default=0.0, help="stop after this long (0 = until a signal)")
    args = parser.parse_args(remove_ros_args(argv)[1:])
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

    try:
        writer = Writer(args.output, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.open()
    except WriterError as e:
        print(f"bag_recorder: {e}", file=sys.stderr)
        return 2
    try:
        return run_node(argv, stop, NODE_NAME, lambda: rclpy.create_node(NODE_NAME),
                        lambda node: _record(node, args, writer, stop))
    finally:
        writer.close()


def _record(node: Any, args: argparse.Namespace, writer: Any, stop: StopRequest) -> None:
    recorder = BagRecorder(node, args.topics, writer)
    deadline = time.monotonic() + args.duration_s if args.duration_s > 0 else float("inf")
    spin_until_stopped(node, stop, lambda: time.monotonic() > deadline)
    # messages DDS has already delivered belong in the recording: take them until the topics are quiet
    written, quiet_since = recorder.count, time.monotonic()
    while time.monotonic() - quiet_since < DRAIN_IDLE_S:
        rclpy.spin_once(node, timeout_sec=DRAIN_IDLE_S)
        if recorder.count != written:
            written, quiet_since = recorder.count, time.monotonic()
    node.get_logger().info(f"recorded {recorder.count} messages to {args.output}"
                           + (f"; never saw {sorted(recorder.pending)}" if recorder.pending else ""))


if __name__ == "__main__":
    sys.exit(main())
