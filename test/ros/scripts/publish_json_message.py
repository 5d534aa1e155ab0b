"""Publish one message, built from a JSON file, repeatedly until killed (test helper process).

    python publish_json_message.py --type tdmi_msgs/msg/Skeleton2DArray --json msg.json --topic /t

The message is published every ``--period-s`` once a subscriber has matched, so a test in another
process can receive it over DDS. Exits 0 on SIGINT/SIGTERM.
"""
from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy

from tdmi_ros.msgdict import dict_to_message


def _message_class(type_name: str) -> type:
    package, _, name = type_name.replace("/msg/", "/").partition("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--type", required=True, help="message type, e.g. tdmi_msgs/msg/Skeleton2DArray")
    parser.add_argument("--json", required=True, type=Path, help="JSON file with the message fields")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--period-s", type=float, default=0.05)
    args = parser.parse_args(argv)
    msg = dict_to_message(_message_class(args.type), json.loads(args.json.read_text()))
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    try:
        with rclpy.init():
            node = rclpy.create_node("json_publisher")
            pub = node.create_publisher(type(msg), args.topic, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))

            def tick() -> None:
                if pub.get_subscription_count() > 0:
                    pub.publish(msg)

            node.create_timer(args.period_s, tick)
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
