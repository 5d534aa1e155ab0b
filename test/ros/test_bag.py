"""Record and replay as ROS users do, without ``ros2 bag``: the bag recorder writes a rosbag2 MCAP
recording of a real-video run (video publisher -> detector -> pose node with the shipped weights),
two independent readers read it (``mcap`` + ``mcap-ros2-support``, and ``rosbags``), and the bag
player replays its images + detections into a fresh pose node, which publishes the same /poses."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ros_harness import start_pose_node, write_pose_params

from tdmi_ros.bag import typestore
from tdmi_ros.conversions import skeleton_array_to_numpy, stamp_to_ns

pytestmark = pytest.mark.ros

N_FRAMES = 12
TOPICS = ("/image", "/detections", "/poses")
TYPES = {"/image": "sensor_msgs/msg/Image", "/detections": "tdmi_msgs/msg/PersonDetectionArray",
         "/poses": "tdmi_msgs/msg/Skeleton2DArray"}


def run_params(tmp_path: Path, repo_root: Path, video: Path, movenet: Path) -> Path:
    """Shipped weights; nothing may be dropped, so that the replay meets the same frames."""
    path = write_pose_params(
        tmp_path, repo_root, runtime={"allow_untrained": False, "weights": str(repo_root / "weights" / "tdmi_lite.pt"),
                                      "model": "tdmi_lite"},
        image_qos="reliable", image_qos_depth=50, queue_depth=50, max_frame_age_s=0.0, pairing_max_wait_s=10.0,
        flush_after_idle_s=1.0)  # the last delta frames too
    config = yaml.safe_load(path.read_text())
    config["/**/tdmi_video_publisher"]["ros__parameters"].update(
        source=str(video), rate_hz=6.0, max_frames=N_FRAMES, resize_width=384, wait_for_subscribers=3)
    config["/**/tdmi_detector"]["ros__parameters"].update(model_path=str(movenet), image_qos="reliable", max_pending=50,
                                                           wait_for_subscribers=2)  # pose node + bag recorder
    path.write_text(yaml.safe_dump(config))
    return path


def poses_of(messages: list) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(stamp, track ids, keypoints [P, 17, 3]) of each Skeleton2DArray."""
    return [(stamp_to_ns(m.header.stamp), *skeleton_array_to_numpy(m)) for m in messages]


def assert_same_poses(got: list, expected: list) -> float:
    """Same stamps, track ids and keypoints (within 1e-4); returns the largest keypoint difference."""
    assert [s for s, _, _ in got] == [s for s, _, _ in expected]
    largest = 0.0
    for (stamp, ids, kps), (_, want_ids, want_kps) in zip(got, expected):
        assert np.array_equal(ids, want_ids), stamp
        np.testing.assert_allclose(kps, want_kps, rtol=0, atol=1e-4, err_msg=str(stamp))
        largest = max(largest, float(np.abs(kps - want_kps).max(initial=0.0)))
    return largest


def test_the_recorded_schemas_are_the_installed_types():
    """``ros2 bag`` matches topics by type hash: the recording's RIHS01 hashes are the installed ones."""
    from ament_index_python.packages import get_package_share_directory

    store = typestore(TYPES.values())
    for msgtype in TYPES.values():
        package, _, name = msgtype.split("/")
        description = json.loads((Path(get_package_share_directory(package)) / "msg" / f"{name}.json").read_text())
        installed = next(h["hash_string"] for h in description["type_hashes"] if h["type_name"] == msgtype)
        assert store.hash_rihs01(msgtype) == installed


def test_record_a_real_video_run_then_replay_it_into_a_fresh_node(ros, procs, tmp_path, repo_root, video, movenet):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosbags.rosbag2 import Reader
    from tdmi_msgs.msg import Skeleton2DArray

    received: list = []
    poses_sub = ros.node.create_subscription(Skeleton2DArray, "poses", received.append,
                                             QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    params = run_params(tmp_path, repo_root, video, movenet)
    bag = tmp_path / "run"
    recorder = procs.start(["-m", "tdmi_ros.bag_recorder", "--output", str(bag), "poses", "image", "detections"],
                           name="recorder")
    pose = start_pose_node(procs, params, name="pose")
    # this test's reader is volatile: what the node publishes before it matched never reaches it
    ros.spin_until(lambda: poses_sub.get_publisher_count() == 1, 60.0, "the pose node's /poses to match")
    for module in ("tdmi_ros.detector_node", "tdmi_ros.video_publisher"):  # the video waits for 3 subscribers
        procs.start(["-m", module, "--ros-args", "--params-file", str(params)], name=module)
    ros.spin_until(lambda: len(received) >= N_FRAMES or pose.poll() is not None, 180.0, f"{N_FRAMES} /poses")
    live = poses_of(received)
    assert len(live) == N_FRAMES and any(len(ids) for _, ids, _ in live), procs.log_text(pose)
    assert procs.stop(recorder) == 0, procs.log_text(recorder)
    procs.stop_all()

    # rosbags reads the folder as ros2 bag does: every message of the run, with its type
    with Reader(bag) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == TYPES
        assert {c.topic: c.msgcount for c in reader.connections} == dict.fromkeys(TOPICS, N_FRAMES)
    # an independent MCAP reader (Foxglove's) decodes the ros2 schemas + CDR to the same poses
    (mcap_file,) = bag.glob("*.mcap")
    with open(mcap_file, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        decoded = [(schema, channel, msg) for schema, channel, _, msg in reader.iter_decoded_messages(topics=["/poses"])]
    assert {(s.encoding, c.message_encoding) for s, c, _ in decoded} == {("ros2msg", "cdr")}
    from_mcap = [(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec,
                  np.array([s.track_id for s in m.skeletons], dtype=np.int64),
                  np.array([[(k.x, k.y, k.score) for k in s.keypoints] for s in m.skeletons]).reshape(-1, 17, 3))
                 for _, _, m in decoded]
    assert_same_poses(from_mcap, live)

    # replay the inputs into a fresh node: the same /poses
    received.clear()
    ros.spin_until(lambda: poses_sub.get_publisher_count() == 0, 60.0, "the stopped node's /poses to go")
    replay_node = start_pose_node(procs, params, name="pose_replay")
    ros.spin_until(lambda: poses_sub.get_publisher_count() == 1, 60.0, "the replay node's /poses to match")
    player = procs.start(["-m", "tdmi_ros.bag_player", str(bag), "--topics", "/image", "/detections",
                          "--wait-for-subscribers", "1"], name="player")
    ros.spin_until(lambda: len(received) >= N_FRAMES or replay_node.poll() is not None, 120.0, "the replay's /poses")
    assert player.wait(30) == 0, procs.log_text(player)
    largest = assert_same_poses(poses_of(received), live)
    print(f"\nrecord -> replay: {len(live)} /poses, {sum(len(ids) for _, ids, _ in live)} skeletons, "
          f"same stamps and ids, largest keypoint difference {largest:.2g} px")


def test_player_plays_a_sqlite3_recording_at_its_recorded_rate(ros, procs, tmp_path):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer
    from tdmi_msgs.msg import Skeleton2DArray

    msgtype, spacing_ns, count = TYPES["/poses"], 200_000_000, 10  # 1.8 s as recorded
    sent = []
    with Writer(tmp_path / "bag", version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        connection = writer.add_connection("/recorded/poses", msgtype, typestore=typestore([msgtype]))
        for i in range(count):
            msg = Skeleton2DArray()
            msg.header.stamp.sec, msg.header.frame_id = i, f"camera{i}"
            sent.append(serialize_message(msg))
            writer.write(connection, 10**18 + i * spacing_ns, sent[-1])
    arrivals: list[tuple[float, bytes]] = []
    ros.node.create_subscription(Skeleton2DArray, "/recorded/poses",
                                 lambda m: arrivals.append((time.monotonic(), serialize_message(m))),
                                 QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    player = procs.start(["-m", "tdmi_ros.bag_player", str(tmp_path / "bag"), "--rate", "4",
                          "--wait-for-subscribers", "1"], name="player")
    ros.spin_until(lambda: len(arrivals) == count or player.poll() not in (None, 0), 60.0, "the played messages")
    assert player.wait(30) == 0, procs.log_text(player)
    assert [data for _, data in arrivals] == sent
    # the median: a first message can wait for the subscriber's side of discovery
    gap_s = float(np.median(np.diff([t for t, _ in arrivals])))
    assert 0.035 <= gap_s <= 0.1, f"recorded 0.2 s apart, played at 4x: {gap_s:.3f} s apart"
