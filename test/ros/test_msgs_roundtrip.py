"""tdmi_msgs cross a process boundary over DDS unchanged, and DDS stays on loopback.

A child process publishes a Skeleton2DArray / PersonDetectionArray built from JSON; this pytest
process receives it and compares every field (floats by their float32 bit pattern, so NaN, inf
and -0.0 count too). While both processes are up, every inet socket they hold must be bound to
(and, if connected, talk to) 127.0.0.1 only.
"""
from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ros_harness import SCRIPTS_DIR, non_loopback_sockets

tdmi_msgs = pytest.importorskip("tdmi_msgs.msg")
from tdmi_ros.msgdict import dict_to_message, message_to_dict  # noqa: E402

pytestmark = pytest.mark.ros

SPECIAL_FLOATS = [0.0, -0.0, math.inf, -math.inf, math.nan, 1e-40, 3.4028234663852886e38, -1.5]


def _f32(rng: np.random.Generator, scale: float = 1000.0) -> float:
    return float(np.float32(rng.normal() * scale))


def _box(rng: np.random.Generator) -> dict[str, float]:
    return {"center_x": _f32(rng), "center_y": _f32(rng), "size_x": abs(_f32(rng)), "size_y": abs(_f32(rng))}


def _header(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "stamp": {"sec": int(rng.integers(-(2**31), 2**31 - 1)), "nanosec": int(rng.integers(0, 10**9))},
        "frame_id": "camera_optical_frame/ünïcode",
    }


def skeleton_array_dict(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    skeletons = []
    for i in range(4):
        keypoints = [{"x": _f32(rng), "y": _f32(rng), "score": float(np.float32(rng.random()))} for _ in range(17)]
        # the special values (NaN, inf, -0.0, subnormal, float32 max) must survive in every slot kind
        for j, special in enumerate(SPECIAL_FLOATS):
            keypoints[(i * 3 + j) % 17][("x", "y", "score")[j % 3]] = special
        skeletons.append(
            {
                "track_id": [0, 2**31 - 1, -(2**31), -1][i],
                "box": _box(rng),
                "box_score": float(np.float32(rng.random())),
                "keypoints": keypoints,
                "score": SPECIAL_FLOATS[i],
            }
        )
    return {"header": _header(rng), "skeletons": skeletons}


def detection_array_dict(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    detections = [
        {"box": _box(rng), "score": float(np.float32(rng.random())), "track_id": tid}
        for tid in (-1, 0, 7, 2**31 - 1, -(2**31))
    ]
    return {"header": _header(rng), "detections": detections}


def _bits(value: Any) -> Any:
    """Map floats to their float32 bit pattern so equality is exact (NaN == NaN, 0.0 != -0.0)."""
    if isinstance(value, float):
        return ("f32", struct.unpack("<I", struct.pack("<f", value))[0])
    if isinstance(value, dict):
        return {k: _bits(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bits(v) for v in value]
    return value


@pytest.mark.parametrize(
    ("type_name", "msg_class_name", "make"),
    [
        ("tdmi_msgs/msg/Skeleton2DArray", "Skeleton2DArray", skeleton_array_dict),
        ("tdmi_msgs/msg/PersonDetectionArray", "PersonDetectionArray", detection_array_dict),
    ],
)
def test_message_round_trips_across_processes_on_loopback(ros, procs, tmp_path: Path, type_name, msg_class_name, make):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    msg_class = getattr(tdmi_msgs, msg_class_name)
    expected = make(seed=len(msg_class_name))
    # the dict survives the local msg build unchanged (so a mismatch below is the wire's fault)
    assert _bits(message_to_dict(dict_to_message(msg_class, expected))) == _bits(expected)
    spec = tmp_path / "msg.json"
    spec.write_text(json.dumps(expected))

    topic = f"/roundtrip_{msg_class_name.lower()}"
    received: list[Any] = []
    ros.node.create_subscription(
        msg_class, topic, received.append, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    )
    child = procs.start(
        [str(SCRIPTS_DIR / "publish_json_message.py"), "--type", type_name, "--json", str(spec), "--topic", topic],
        name="publisher",
    )
    ros.spin_until(lambda: bool(received) or child.poll() is not None, 30.0, f"{msg_class_name} from the child")
    assert child.poll() is None, f"publisher died:\n{procs.log_text(child)}"

    got = message_to_dict(received[0])
    assert _bits(got) == _bits(expected)
    assert isinstance(received[0], msg_class)

    # both ROS processes are up and matched: every socket they own must be loopback-only
    import psutil

    pids = [os.getpid(), child.pid]
    udp_counts = {pid: sum(1 for c in psutil.Process(pid).net_connections(kind="udp")) for pid in pids}
    assert all(n > 0 for n in udp_counts.values()), f"expected DDS UDP sockets, got {udp_counts}"
    assert non_loopback_sockets(pids) == []
    assert procs.stop(child) == 0, procs.log_text(child)


def test_no_ipv6_or_wildcard_udp_in_proc_net(ros, procs, tmp_path: Path):
    """Cross-check psutil with /proc/net/udp{,6}: the child's socket inodes are all on 127.0.0.1."""
    spec = tmp_path / "msg.json"
    spec.write_text(json.dumps(skeleton_array_dict(seed=1)))
    received: list[Any] = []
    ros.node.create_subscription(tdmi_msgs.Skeleton2DArray, "/roundtrip_proc", received.append, 10)
    child = procs.start(
        [str(SCRIPTS_DIR / "publish_json_message.py"), "--type", "tdmi_msgs/msg/Skeleton2DArray",
         "--json", str(spec), "--topic", "/roundtrip_proc"],
        name="publisher",
    )
    ros.spin_until(lambda: bool(received) or child.poll() is not None, 30.0, "a message from the child")
    assert child.poll() is None, procs.log_text(child)

    inodes = set()
    for fd in Path(f"/proc/{child.pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    local_addrs = {}
    for table in ("/proc/net/udp", "/proc/net/udp6", "/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[9] in inodes:
                local_addrs[cols[9]] = (table, cols[1].split(":")[0])
    assert local_addrs, "the child holds no inet sockets at all; the check would be vacuous"
    # 0100007F is 127.0.0.1 in /proc's little-endian hex; nothing may sit in the IPv6 tables
    bad = {inode: where for inode, where in local_addrs.items() if where[0].endswith("6") or where[1] != "0100007F"}
    assert bad == {}, f"non-loopback sockets in the child: {bad}"
