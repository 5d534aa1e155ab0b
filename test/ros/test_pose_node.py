"""The pose node as a separate process over loopback DDS, fed by this test (no detector process):
frame-t stamps after exactly delta frames, in-image keypoints, markers, diagnostics, start-up errors."""
from __future__ import annotations

import numpy as np
import pytest
from ros_harness import StreamProbe, header_for, start_pose_node, synthetic_frame, write_pose_params

from tdmi_ros.conversions import bgr_to_image_msg, boxes_to_detection_msg, skeleton_array_to_numpy, stamp_to_ns

pytestmark = pytest.mark.ros

DELTA = 2


def publish_frame(probe: StreamProbe, i: int, with_detections: bool = True) -> int:
    img, box = synthetic_frame(i)
    header = header_for(i)
    probe.image_pub.publish(bgr_to_image_msg(img, header))
    if with_detections:
        probe.det_pub.publish(boxes_to_detection_msg(box[None], np.array([0.9]), header))
    return stamp_to_ns(header.stamp)


def test_poses_are_frame_t_stamped_and_lag_exactly_delta_frames(ros, procs, tmp_path, repo_root):
    node = start_pose_node(procs, write_pose_params(tmp_path, repo_root, image_qos="reliable"))
    probe = StreamProbe(ros)
    probe.wait_ready(node, procs)
    sent: list[int] = []
    n = 8
    for i in range(n):
        sent.append(publish_frame(probe, i))
        expected = max(0, i + 1 - DELTA)
        # frame t's poses appear once frame t + delta is in, and not before
        ros.spin_until(lambda n=expected: len(probe.poses) >= n, 20.0, f"{expected} pose messages")
        ros.spin_for(0.3)
        assert len(probe.poses) == expected, f"after frame {i}: {len(probe.poses)} pose messages, expected {expected}"
    got = [stamp_to_ns(m.header.stamp) for m in probe.poses]
    assert got == sent[: n - DELTA]
    for msg in probe.poses:
        assert msg.header.frame_id == "cam"
        ids, kps = skeleton_array_to_numpy(msg)
        assert len(ids) == 1 and kps.shape == (1, 17, 3)
        assert np.all((kps[..., 0] >= 0) & (kps[..., 0] <= 63) & (kps[..., 1] >= 0) & (kps[..., 1] <= 47))
        assert np.all((kps[..., 2] >= 0) & (kps[..., 2] <= 1))
    # one moving person without detector ids -> the node's tracker keeps one id
    assert len({m.skeletons[0].track_id for m in probe.poses}) == 1
    ros.spin_until(lambda: len(probe.markers) >= n - DELTA, 10.0, "markers")
    assert stamp_to_ns(probe.markers[0].markers[0].header.stamp) == sent[0]
    assert probe.markers[0].markers[0].lifetime.nanosec > 0
    diag = probe.fresh_diagnostics()
    assert diag["count/image"] == str(n) and diag["count/detections"] == str(n) and diag["count/poses"] == str(n - DELTA)
    assert float(diag["latency_ms/inference/p50"]) > 0
    assert procs.stop(node) == 0


def test_detector_silence_warns_and_recovers(ros, procs, tmp_path, repo_root):
    node = start_pose_node(procs, write_pose_params(tmp_path, repo_root, image_qos="reliable",
                                                    pairing_max_wait_s=0.2, input_silence_warn_s=0.5,
                                                    queue_depth=20))
    probe = StreamProbe(ros)
    probe.wait_ready(node, procs)
    for i in range(10):
        publish_frame(probe, i, with_detections=False)
        ros.spin_for(0.05)
    ros.spin_for(1.0)
    diag = probe.fresh_diagnostics()
    assert diag["level"] == "1" and "detections" in diag["message"]
    assert int(diag["drop/image_unpaired"]) == 10
    for i in range(10, 10 + DELTA + 2):
        publish_frame(probe, i)
        ros.spin_for(0.05)
    ros.spin_until(lambda: len(probe.poses) >= 2, 20.0, "poses after the detector came back")
    assert node.poll() is None


def test_missing_weights_exit_nonzero_with_clear_error(procs, tmp_path, repo_root):
    params = write_pose_params(tmp_path, repo_root, runtime={"allow_untrained": False,
                                                             "weights": str(tmp_path / "nothing_here.pt")})
    node = start_pose_node(procs, params)
    assert node.wait(60) != 0
    log = procs.log_text(node)
    assert "no trained weights" in log and "runtime.allow_untrained" in log


def test_corrupt_weights_exit_nonzero_with_clear_error(procs, tmp_path, repo_root):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"PK\x03\x04 definitely not a checkpoint" * 100)
    node = start_pose_node(procs, write_pose_params(tmp_path, repo_root, runtime={"weights": str(bad)}))
    assert node.wait(60) != 0
    log = procs.log_text(node)
    assert "cannot load weights" in log and str(bad) in log


@pytest.mark.parametrize(("override", "message"), [
    ({"queue_depth": 0}, "queue_depth must be >= 1"),
    ({"pairing_slop_s": 0}, "pairing_slop_s"),  # an int where a float is declared: rclpy refuses it
    ({"runtime": {"backend": "tensorrt", "device": "cpu"}}, "tensorrt"),
    ({"runtime": {"mode": "fast"}}, "runtime mode"),
])
def test_bad_parameter_exits_nonzero(procs, tmp_path, repo_root, override, message):
    node = start_pose_node(procs, write_pose_params(tmp_path, repo_root, **override))
    assert node.wait(60) == 1
    log = procs.log_text(node)
    assert message in log and "Traceback" not in log, log


def test_sigterm_stops_cleanly(ros, procs, tmp_path, repo_root):
    import signal

    node = start_pose_node(procs, write_pose_params(tmp_path, repo_root))
    probe = StreamProbe(ros)
    probe.wait_ready(node, procs)
    node.send_signal(signal.SIGTERM)
    assert node.wait(20) == 0, procs.log_text(node)


def _call(ros, client, request, timeout_s=30.0):
    assert client.wait_for_service(timeout_sec=timeout_s), f"service {client.srv_name} not available"
    future = client.call_async(request)
    ros.spin_until(future.done, timeout_s, f"{client.srv_name} response")
    return future.result()


def test_lifecycle_transitions_driven_from_outside(ros, procs, tmp_path, repo_root):
    """--no-autostart: a lifecycle manager configures/activates/deactivates the node over services."""
    from lifecycle_msgs.msg import State, Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    write_pose_params(tmp_path, repo_root, image_qos="reliable", queue_depth=20)  # bursts below: no skipping
    node = procs.start(["-m", "tdmi_ros.node", "--no-autostart", "--ros-args", "--params-file",
                        str(tmp_path / "pose_test.yaml")], name="pose_lifecycle")
    change = ros.node.create_client(ChangeState, "/tdmi_pose/change_state")
    get = ros.node.create_client(GetState, "/tdmi_pose/get_state")
    assert _call(ros, get, GetState.Request()).current_state.id == State.PRIMARY_STATE_UNCONFIGURED
    probe = StreamProbe(ros)

    def transition(tid):
        assert _call(ros, change, ChangeState.Request(transition=Transition(id=tid))).success

    transition(Transition.TRANSITION_CONFIGURE)
    assert _call(ros, get, GetState.Request()).current_state.id == State.PRIMARY_STATE_INACTIVE
    transition(Transition.TRANSITION_ACTIVATE)
    probe.wait_ready(node, procs)
    for i in range(DELTA + 2):
        publish_frame(probe, i)
    ros.spin_until(lambda: len(probe.poses) >= 2, 20.0, "poses while active")
    transition(Transition.TRANSITION_DEACTIVATE)
    n = len(probe.poses)
    for i in range(DELTA + 2, DELTA + 8):
        publish_frame(probe, i)
    ros.spin_for(1.0)
    assert len(probe.poses) == n, "an inactive node must not publish"
    transition(Transition.TRANSITION_CLEANUP)
    transition(Transition.TRANSITION_CONFIGURE)
    transition(Transition.TRANSITION_ACTIVATE)  # the model is loaded again
    for i in range(100, 100 + DELTA + 2):
        publish_frame(probe, i)
    ros.spin_until(lambda: len(probe.poses) >= n + 2, 20.0, "poses after re-activation")
    assert node.poll() is None
    assert procs.stop(node) == 0


def test_source_restart_flushes_and_restarts(ros, procs, tmp_path, repo_root):
    """Stamps jumping back by more than stamp_reset_s (looping bag/video): the tail of the old
    sequence is published (edge-padded) and the new sequence starts; small steps back are dropped."""
    node = start_pose_node(procs, write_pose_params(tmp_path, repo_root, image_qos="reliable", stamp_reset_s=1.0,
                                                    queue_depth=20))
    probe = StreamProbe(ros)
    probe.wait_ready(node, procs)
    first = [publish_frame(probe, i) for i in range(5)]
    ros.spin_until(lambda: len(probe.poses) >= 3, 20.0, "first sequence")
    second = []
    for i in range(5):  # same stamps as 10 s earlier: a restart
        img, box = synthetic_frame(i)
        header = header_for(i, base_ns=1_700_000_000_000_000_000 - 10_000_000_000)
        probe.image_pub.publish(bgr_to_image_msg(img, header))
        probe.det_pub.publish(boxes_to_detection_msg(box[None], np.array([0.9]), header))
        second.append(stamp_to_ns(header.stamp))
    ros.spin_until(lambda: len(probe.poses) >= 5 + 3, 20.0, "old tail + new sequence")
    ros.spin_for(0.5)
    assert [stamp_to_ns(m.header.stamp) for m in probe.poses] == first + second[:3]
    diag = probe.fresh_diagnostics()
    assert diag["count/stream_reset"] == "1"


def test_compressed_input_and_annotated_image(ros, procs, tmp_path, repo_root):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image

    from tdmi_ros.conversions import bgr_to_compressed_msg, image_to_bgr

    node = start_pose_node(procs, write_pose_params(
        tmp_path, repo_root, image_transport="compressed", image_qos="reliable", publish_annotated_image=True,
        queue_depth=20))
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    pub = ros.node.create_publisher(CompressedImage, "image/compressed", reliable)
    annotated: list = []
    ros.node.create_subscription(Image, "poses/image", annotated.append, reliable)
    probe = StreamProbe(ros)
    ros.spin_until(lambda: (bool(probe.diagnostics) and pub.get_subscription_count() > 0
                            and probe.det_pub.get_subscription_count() > 0) or node.poll() is not None,
                   60.0, "the compressed pose node")
    stamps = []
    for i in range(DELTA + 3):
        img, box = synthetic_frame(i)
        header = header_for(i)
        pub.publish(bgr_to_compressed_msg(img, header))
        probe.det_pub.publish(boxes_to_detection_msg(box[None], np.array([0.9]), header))
        stamps.append(stamp_to_ns(header.stamp))
    ros.spin_until(lambda: len(probe.poses) >= 3 and len(annotated) >= 3, 20.0, "poses and annotated images")
    assert [stamp_to_ns(m.header.stamp) for m in probe.poses] == stamps[:3]
    assert [stamp_to_ns(m.header.stamp) for m in annotated[:3]] == stamps[:3]
    drawn = image_to_bgr(annotated[0])
    plain, _ = synthetic_frame(0)
    assert drawn.shape == plain.shape and np.abs(drawn.astype(int) - plain).sum() > 0  # something was drawn
