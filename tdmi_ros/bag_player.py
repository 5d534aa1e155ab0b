"""Publish a rosbag2 recording (MCAP or sqlite3) at its recorded rate, as ``ros2 bag play`` does.

Messages go out in the order and at the spacing of their recorded times (``--rate`` scales it),
as the recorded bytes: a replay of images + detections into a fresh pose node gives it exactly
what the original node received. Publishers are reliable (they reach best-effort subscriptions too).
Exits 0 at the end of the recording or on SIGINT/SIGTERM.

    bag_player run1 --topics /image /detections --wait-for-subscribers 1
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
from rclpy.duration import Duration
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.utilities import remove_ros_args

from tdmi_ros.bag import message_class
from tdmi_ros.shutdown import StopRequest, run_node, run_program

NODE_NAME = "tdmi_bag_player"


def play(node: Any, bag: Path, topics: list[str] | None, rate: float, wait_for_subscribers: int,
         stop: StopRequest) -> int:
    """Publish the recording (or its ``topics``); returns the number of messages published."""
    from rosbags.rosbag2 import Reader

    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    published = 0
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if topics is None or c.topic in topics]
        publishers = {c.topic: node.create_publisher(message_class(c.msgtype), c.topic, qos) for c in connections}
        while any(p.get_subscription_count() < wait_for_subscribers for p in publishers.values()):
            if stop.wait(0.05):
                return 0
        start_ns = first_ns = 0
        for connection, timestamp, data in reader.messages(connections=connections):
            if published == 0:
                start_ns, first_ns = time.monotonic_ns(), timestamp
            due_s = (start_ns + (timestamp - first_ns) / rate - time.monotonic_ns()) / 1e9
            if stop.wait(max(0.0, due_s)):
                break
            publishers[connection.topic].publish(bytes(data))
            published += 1
        for publisher in publishers.values():  # reliable: the last messages reach their subscribers
            publisher.wait_for_all_acked(Duration(seconds=5))
    return published


def main(argv: list[str] | None = None) -> int:
    """Play the recording once (exit 0); exit 2 if it cannot be read."""
    return run_program(lambda stop: _run(list(sys.argv if argv is None else argv), stop))


def _run(argv: list[str], stop: StopRequest) -> int:
    parser = argparse.ArgumentParser(prog="bag_player", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bag", type=Path, help="rosbag2 folder (metadata.yaml + .mcap or .db3 files)")
    parser.add_argument("--topics", nargs="+", help="play only these topics (default: all)")
    parser.add_argument("--rate", type=float, default=1.0, help="speed factor on the recorded spacing")
    parser.add_argument("--wait-for-subscribers", type=int, default=0,
                        help="before playing, wait until every topic has this many subscriptions")
    args = parser.parse_args(remove_ros_args(argv)[1:])
    if args.rate <= 0:
        parser.error("--rate must be > 0")
    from rosbags.rosbag2 import ReaderError

    def work(node: Any) -> int:
        published = play(node, args.bag, args.topics, args.rate, args.wait_for_subscribers, stop)
        node.get_logger().info(f"published {published} messages from {args.bag}")
        return 0

    try:
        return run_node(argv, stop, NODE_NAME, lambda: rclpy.create_node(NODE_NAME), work)
    except (ReaderError, FileNotFoundError) as e:
        print(f"bag_player: cannot read {args.bag}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
