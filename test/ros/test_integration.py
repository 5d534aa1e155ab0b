"""End to end over loopback DDS, every node its own process, on a real video (OpenCV's vtest.avi,
people walking): video publisher -> MoveNet detector -> pose node -> this test's subscriber; and the
same through the ``tdmi-pose`` launcher (launch_cli) with its recorder and signal handling."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ros_harness import write_pose_params

from tdmi_core.tracking import box_iou
from tdmi_ros.conversions import skeleton_array_to_numpy, stamp_to_ns

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DELTA = 2
N_FRAMES = 30
RATE_HZ = 6.0  # below the file's 10 fps: the MoveNet detector shares 2 CPU cores with the pose node
WIDTH, HEIGHT = 384, 288  # vtest.avi is 768x576; resized by the publisher


def demo_params(tmp_path: Path, repo_root: Path, video: Path, movenet: Path, subscribers: int,
                detection_readers: int) -> Path:
    """One YAML for all three nodes, as a user would write it; the video waits for ``subscribers`` image
    readers, the detector for ``detection_readers``."""
    # lossless (reliable images, queues for every frame, patient pairing): the test checks one message per
    # frame, which a loaded machine must not turn into real-time drops
    path = write_pose_params(tmp_path, repo_root, min_box_score=0.15, max_persons=6, pairing_max_wait_s=60.0,
                             max_frame_age_s=0.0, flush_after_idle_s=0.0, queue_depth=N_FRAMES,
                             image_qos="reliable", image_qos_depth=N_FRAMES)
    config = yaml.safe_load(path.read_text())
    config["/**/tdmi_video_publisher"]["ros__parameters"].update(
        source=str(video), rate_hz=RATE_HZ, max_frames=N_FRAMES, resize_width=WIDTH, frame_id="vtest_camera", qos_depth=N_FRAMES,
        wait_for_subscribers=subscribers)
    config["/**/tdmi_detector"]["ros__parameters"].update(
        model_path=str(movenet), min_score=0.15, long_side_px=384, max_pending=N_FRAMES, image_qos="reliable",
        wait_for_subscribers=detection_readers)
    path.write_text(yaml.safe_dump(config))
    return path


class Collector:
    def __init__(self, ros) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from tdmi_msgs.msg import PersonDetectionArray, Skeleton2DArray
        from visualization_msgs.msg import MarkerArray

        qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self.image_stamps: list[int] = []
        self.image_sizes: set[tuple[int, int]] = set()
        self.detections: list = []
        self.poses: list = []
        self.markers: list = []

        def on_image(msg) -> None:
            self.image_stamps.append(stamp_to_ns(msg.header.stamp))
            self.image_sizes.add((msg.width, msg.height))

        self.subscriptions = [
            ros.node.create_subscription(Image, "image", on_image, qos),
            ros.node.create_subscription(PersonDetectionArray, "detections", self.detections.append, qos),
            ros.node.create_subscription(Skeleton2DArray, "poses", self.poses.append, qos),
            ros.node.create_subscription(MarkerArray, "poses/markers", self.markers.append, qos),
        ]

    def outputs_matched(self) -> bool:
        """Whether the detector's and the pose node's outputs reach this test: a volatile topic delivers
        nothing published before its reader matched, and discovery is not synchronised with the video."""
        return all(sub.get_publisher_count() >= 1 for sub in self.subscriptions[1:])


def check_tracks_stable(poses: list) -> tuple[int, int]:
    """For people seen in consecutive outputs (box IoU >= 0.5), count how often the id stayed the same."""
    same = total = 0
    for prev, cur in zip(poses, poses[1:]):
        if not prev.skeletons or not cur.skeletons:
            continue

        def boxes(msg):
            return np.array([[s.box.center_x - s.box.size_x / 2, s.box.center_y - s.box.size_y / 2,
                              s.box.center_x + s.box.size_x / 2, s.box.center_y + s.box.size_y / 2]
                             for s in msg.skeletons])

        iou = box_iou(boxes(cur), boxes(prev))
        for i, s in enumerate(cur.skeletons):
            j = int(np.argmax(iou[i]))
            if iou[i, j] >= 0.5:
                total += 1
                same += int(s.track_id == prev.skeletons[j].track_id)
    return same, total


def test_video_detector_pose_node_end_to_end(ros, procs, tmp_path, repo_root, video, movenet):
    params = demo_params(tmp_path, repo_root, video, movenet, subscribers=3,  # detector, pose node, this test
                         detection_readers=2)  # pose node, this test
    collector = Collector(ros)
    pose = procs.start(["-m", "tdmi_ros.node", "--ros-args", "--params-file", str(params)], name="pose")
    detector = procs.start(["-m", "tdmi_ros.detector_node", "--ros-args", "--params-file", str(params)],
                           name="detector")
    ros.spin_until(lambda: collector.outputs_matched() or pose.poll() is not None or detector.poll() is not None,
                   120.0, "the detector's and the pose node's outputs to match this test's subscriptions")
    from rclpy.qos import DurabilityPolicy

    # a recorder that matches late still gets the node's last /poses messages
    (poses_info,) = ros.node.get_publishers_info_by_topic("/poses")
    assert poses_info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
    publisher = procs.start(["-m", "tdmi_ros.video_publisher", "--ros-args", "--params-file", str(params)],
                            name="video")
    ros.spin_until(lambda: publisher.poll() is not None or pose.poll() is not None or detector.poll() is not None,
                   120.0, "the video publisher to finish")
    assert publisher.returncode == 0, procs.log_text(publisher)
    ros.spin_until(lambda: len(collector.poses) >= N_FRAMES - DELTA or pose.poll() is not None, 120.0,
                   lambda: f"{N_FRAMES - DELTA} pose messages (have {len(collector.poses)} poses, "
                   f"{len(collector.detections)} detections, {len(collector.image_stamps)} images)")
    ros.spin_for(0.5)
    assert pose.poll() is None and detector.poll() is None, procs.log_text(pose) + procs.log_text(detector)

    assert len(collector.image_stamps) == N_FRAMES and collector.image_sizes == {(WIDTH, HEIGHT)}
    pose_stamps = [stamp_to_ns(m.header.stamp) for m in collector.poses]
    # /poses for frame t carries frame t's own stamp, in order, one per frame except the last delta
    assert pose_stamps == collector.image_stamps[: N_FRAMES - DELTA]
    assert all(m.header.frame_id == "vtest_camera" for m in collector.poses)
    # the detector also kept the image headers
    assert [stamp_to_ns(d.header.stamp) for d in collector.detections] == collector.image_stamps

    n_people = [len(m.skeletons) for m in collector.poses]
    assert np.mean(n_people) >= 2, f"MoveNet found too few people in vtest: {n_people}"
    for msg in collector.poses:
        _, kps = skeleton_array_to_numpy(msg)
        assert np.all((kps[..., 0] >= 0) & (kps[..., 0] <= WIDTH - 1)), "keypoint x outside the image"
        assert np.all((kps[..., 1] >= 0) & (kps[..., 1] <= HEIGHT - 1)), "keypoint y outside the image"
        assert np.all((kps[..., 2] >= 0) & (kps[..., 2] <= 1))

    same, total = check_tracks_stable(collector.poses)
    ids = {s.track_id for m in collector.poses for s in m.skeletons}
    print(f"\nend to end: {len(collector.poses)} pose messages, people per frame {n_people}, "
          f"track ids kept {same}/{total}, {len(ids)} distinct ids, {len(collector.markers)} marker arrays")
    assert total >= 2 * (N_FRAMES - DELTA - 1), f"too few person continuations to judge tracking: {total}"
    assert same / total >= 0.95, f"track ids changed for {total - same} of {total} continuing people"
    assert len(ids) <= 3 * max(n_people), f"tracker fragmented: {len(ids)} ids for at most {max(n_people)} people"

    marker_stamps = {stamp_to_ns(ma.markers[0].header.stamp) for ma in collector.markers if ma.markers}
    with_people = {stamp_to_ns(m.header.stamp) for m in collector.poses if m.skeletons}
    assert with_people and with_people <= marker_stamps
    for ma in collector.markers:
        for marker in ma.markers:
            assert marker.ns and marker.lifetime.nanosec + marker.lifetime.sec > 0 and marker.color.a == 1.0
    for p in (pose, detector):
        assert procs.stop(p) == 0, procs.log_text(p)


def _launcher(params: Path, *args: str, log: Path, cwd: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tdmi_ros.launch_cli", "--config", str(params), *args],
                            cwd=cwd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def _wait_until_active(launcher: subprocess.Popen, log: Path, timeout_s: float = 60.0) -> None:
    """Until the launcher's pose node logs that it is active (fails if the launcher exits first)."""
    deadline = time.monotonic() + timeout_s
    while "active:" not in log.read_text(errors="replace"):
        assert launcher.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.2)


def _children(pid: int) -> list:
    import psutil

    return psutil.Process(pid).children(recursive=True)


def test_tdmi_pose_launcher_runs_the_demo_and_records(procs, tmp_path, repo_root, video, movenet):
    params = demo_params(tmp_path, repo_root, video, movenet, subscribers=2,  # detector, pose node
                         detection_readers=1)
    out = tmp_path / "poses.jsonl"
    log = tmp_path / "launcher.log"
    launcher = _launcher(params, "--allow-untrained", "--video", str(video), "--detector", "--record", str(out),
                         "--exit-when-video-ends", "--linger-s", "4", log=log, cwd=repo_root, env=procs.env)
    try:
        code = launcher.wait(150)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    text = log.read_text(errors="replace")
    assert code == 0, text
    records = [json.loads(line) for line in out.read_text().splitlines()]
    # the recorder may join after the first outputs; what it has must be consecutive frames, in order
    assert len(records) >= N_FRAMES // 2, text
    stamps = [r["stamp_ns"] for r in records]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert any(r["skeletons"] for r in records)
    assert all(len(s["keypoints"]) == 17 for r in records for s in r["skeletons"])


def test_tdmi_pose_children_stop_when_the_launcher_is_killed(procs, tmp_path, repo_root):
    """SIGKILL cannot be forwarded: the children (own sessions) still get SIGTERM from the kernel and exit."""
    import psutil

    params = write_pose_params(tmp_path, repo_root)
    log = tmp_path / "launcher.log"
    launcher = _launcher(params, "--allow-untrained", "--record", str(tmp_path / "poses.jsonl"), log=log,
                         cwd=repo_root, env=procs.env)
    try:
        _wait_until_active(launcher, log)
        children = _children(launcher.pid)
        assert len(children) == 2  # the pose node and the recorder
    finally:
        launcher.kill()
    launcher.wait(10)
    _, alive = psutil.wait_procs(children, timeout=30)
    orphans = [c.cmdline() for c in alive]
    for c in alive:  # a failure must not leave them publishing into later tests
        c.kill()
    assert not orphans, f"orphaned after the launcher was killed: {orphans}"


def test_tdmi_pose_launcher_forwards_sigint_and_reports_failures(procs, tmp_path, repo_root):
    params = write_pose_params(tmp_path, repo_root)
    log = tmp_path / "launcher.log"
    launcher = _launcher(params, "--allow-untrained", log=log, cwd=repo_root, env=procs.env)
    try:
        _wait_until_active(launcher, log)
        children = _children(launcher.pid)
        assert children
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(30) == 0, log.read_text(errors="replace")
        assert not any(c.is_running() and c.status() != "zombie" for c in children)
    finally:
        if launcher.poll() is None:
            launcher.kill()

    bad = write_pose_params(tmp_path, repo_root, runtime={"allow_untrained": False, "weights": "missing.pt"})
    failing = _launcher(bad, log=log, cwd=repo_root, env=procs.env)
    try:
        assert failing.wait(60) != 0
    finally:
        if failing.poll() is None:
            failing.kill()
    assert "no trained weights" in log.read_text(errors="replace")
