"""The pose node over loopback DDS: a causal model publishes frame t when frame t arrives; one node
serves two cameras, each on its own topics with its own stamps; one node per camera serves the same topics."""
from __future__ import annotations

import numpy as np
import pytest
from ros_harness import StreamProbe, header_for, start_pose_node, synthetic_frame, write_pose_params
from tiny_model import write_tiny_model_yaml

from tdmi_ros.conversions import bgr_to_image_msg, boxes_to_detection_msg, skeleton_array_to_numpy, stamp_to_ns
from tdmi_ros.launch_cli import node_commands

pytestmark = pytest.mark.ros


def publish_frame(probe: StreamProbe, i: int, base_ns: int = 1_700_000_000_000_000_000, frame_id: str = "cam",
                  width: int = 64) -> int:
    img, box = synthetic_frame(i, width=width)
    header = header_for(i, base_ns=base_ns, frame_id=frame_id)
    probe.image_pub.publish(bgr_to_image_msg(img, header))
    probe.det_pub.publish(boxes_to_detection_msg(box[None], np.array([0.9]), header))
    return stamp_to_ns(header.stamp)


def test_causal_model_publishes_frame_t_when_frame_t_arrives(ros, procs, tmp_path, repo_root):
    causal = write_tiny_model_yaml(tmp_path, window="causal")
    node = start_pose_node(procs, write_pose_params(tmp_path, repo_root, runtime={"model": str(causal)},
                                                    image_qos="reliable"))
    probe = StreamProbe(ros)
    probe.wait_ready(node, procs)
    sent = []
    for i in range(6):
        sent.append(publish_frame(probe, i))
        # no later frame is needed: frame i's poses come before frame i + 1 is even sent
        ros.spin_until(lambda i=i: len(probe.poses) > i, 20.0, f"the poses of frame {i}")
        assert stamp_to_ns(probe.poses[i].header.stamp) == sent[i]
    assert [stamp_to_ns(m.header.stamp) for m in probe.poses] == sent
    assert all(len(m.skeletons) == 1 for m in probe.poses)
    assert procs.stop(node) == 0


def test_one_node_serves_two_cameras_each_with_its_own_stamps(ros, procs, tmp_path, repo_root):
    params = write_pose_params(tmp_path, repo_root, image_qos="reliable", cameras=["left", "right"],
                               image_qos_depth=20, queue_depth=20, max_frame_age_s=0.0)  # a burst: none skipped
    node = start_pose_node(procs, params)
    left, right = StreamProbe(ros, namespace="left"), StreamProbe(ros, namespace="right")
    left.wait_ready(node, procs)
    right.wait_ready(node, procs)
    n, delta = 7, 2
    # the cameras' clocks and frame ids differ, and so do their image sizes
    sent = {"left": [], "right": []}
    for i in range(n):
        sent["left"].append(publish_frame(left, i, base_ns=1_700_000_000_000_000_000, frame_id="left_optical"))
        sent["right"].append(publish_frame(right, i, base_ns=1_800_000_000_000_000_000, frame_id="right_optical",
                                           width=96))
    ros.spin_until(lambda: len(left.poses) >= n - delta and len(right.poses) >= n - delta, 30.0, "both cameras' poses")
    for name, probe, width in (("left", left, 64), ("right", right, 96)):
        assert [stamp_to_ns(m.header.stamp) for m in probe.poses] == sent[name][: n - delta]
        assert {m.header.frame_id for m in probe.poses} == {f"{name}_optical"}
        for msg in probe.poses:
            _, kps = skeleton_array_to_numpy(msg)
            assert kps.shape == (1, 17, 3) and np.all((kps[..., 0] >= 0) & (kps[..., 0] <= width - 1))
        assert stamp_to_ns(probe.markers[0].markers[0].header.stamp) == sent[name][0]
    diag = left.fresh_diagnostics()
    assert diag["count/left/image"] == diag["count/right/image"] == str(n)
    assert diag["count/poses"] == str(2 * (n - delta))
    assert procs.stop(node) == 0


def test_one_node_per_camera_serves_the_same_topics(ros, procs, tmp_path, repo_root):
    params = write_pose_params(tmp_path, repo_root, image_qos="reliable")
    (command,) = node_commands(params, detector=False, allow_untrained=True, cameras=["front"], node_per_camera=True)
    assert "__ns:=/front" in command.argv()
    node = procs.start(command.argv()[1:], name="pose_front")  # argv[0] is the interpreter
    probe = StreamProbe(ros, namespace="front")
    probe.wait_ready(node, procs)
    sent: list[int] = []
    while len(probe.poses) < 2:  # frames until poses come back (one sent while discovery settles may be lost)
        assert len(sent) < 60 and node.poll() is None, f"no poses on /front/poses:\n{procs.log_text(node)}"
        sent.append(publish_frame(probe, len(sent)))
        ros.spin_for(0.2)
    got = [stamp_to_ns(m.header.stamp) for m in probe.poses]
    assert len(got) >= 2 and set(got) <= set(sent) and got == sorted(got)  # this camera's own stamps, in order
    assert procs.stop(node) == 0
