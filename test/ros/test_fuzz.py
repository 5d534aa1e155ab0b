"""Fuzz the pose node process with >= 1,000 malformed messages over DDS; it must stay alive, count
every drop by reason in /diagnostics, and publish correct poses for good frames afterwards."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from ros_harness import StreamProbe, header_for, start_pose_node, synthetic_frame, write_pose_params
from sensor_msgs.msg import CompressedImage, Image
from tdmi_msgs.msg import BoundingBox2D, PersonDetection, PersonDetectionArray

from tdmi_ros.conversions import bgr_to_image_msg, boxes_to_detection_msg, stamp_to_ns

pytestmark = pytest.mark.ros

DELTA = 2
W, H = 64, 48


def _image(header, encoding="bgr8", width=W, height=H, step=W * 3, nbytes=None, seed=0) -> Image:
    msg = Image(header=header, encoding=encoding, width=width, height=height, step=step, is_bigendian=0)
    n = step * height if nbytes is None else nbytes
    msg.data = np.random.default_rng(seed).integers(0, 256, max(n, 0), dtype=np.uint8).tobytes()
    return msg


def _det(cx, cy, w, h, score, tid=-1) -> PersonDetection:
    box = BoundingBox2D(center_x=float(cx), center_y=float(cy), size_x=float(w), size_y=float(h))
    return PersonDetection(box=box, score=float(score), track_id=int(tid))


BAD_BOXES = [
    (math.nan, 20, 10, 20, 0.9), (20, math.inf, 10, 20, 0.9), (20, 20, -10, 20, 0.9), (20, 20, 10, 0, 0.9),
    (20, 20, 10, 20, math.nan), (20, 20, 10, 20, -0.5), (20, 20, 10, 20, 7.0), (1e30, 1e30, 1e30, 1e30, 0.9),
    (-500, -500, 20, 20, 0.9), (900, 20, 20, 20, 0.9), (20, 20, 1e-7, 1e-7, 0.9), (-math.inf, 0, math.inf, 1, 0.5),
]


def test_fuzz_1000_malformed_messages_node_survives_and_counts(ros, procs, tmp_path, repo_root):
    # boxes are read by the worker: no frame may be skipped (deep queue, no age limit) so every bad box is counted
    node = start_pose_node(procs, write_pose_params(
        tmp_path, repo_root, image_qos="reliable", image_qos_depth=500, detections_qos_depth=500,
        pairing_max_wait_s=0.3, stamp_reset_s=100.0, queue_depth=500, max_frame_age_s=0.0))
    probe = StreamProbe(ros, image_qos_depth=500)
    probe.wait_ready(node, procs)
    rng = np.random.default_rng(1234)
    sent: Counter = Counter()
    expected_drop: Counter = Counter()
    i = 0  # frame counter for stamps (always increasing unless we mean otherwise)

    def pub_image(msg, kind):
        probe.image_pub.publish(msg)
        sent["image"] += 1
        sent[kind] += 1

    while sum(v for k, v in sent.items() if k.startswith("bad_")) < 1100:
        i += 1
        header = header_for(i)
        kind = int(rng.integers(0, 10))
        if kind == 0:
            enc = str(rng.choice(["", "32FC1", "yuv422_yuy2", "bayer_rggb8", "jpeg", "bgr8 ", "BGR8", "ü" * 50]))
            pub_image(_image(header, encoding=enc, seed=i), "bad_encoding")
            expected_drop["image_unknown_encoding"] += 1
        elif kind == 1:
            pub_image(_image(header, step=W * 3 - int(rng.integers(1, 10)), nbytes=W * 3 * H, seed=i), "bad_step")
            expected_drop["image_bad_size"] += 1
        elif kind == 2:
            pub_image(_image(header, nbytes=W * 3 * H + int(rng.integers(-500, 500) or 1), seed=i), "bad_length")
            expected_drop["image_bad_size"] += 1
        elif kind == 3:
            width, height = [(0, H), (W, 0), (2**20, 2**20), (2**31, 1)][int(rng.integers(0, 4))]
            pub_image(_image(header, width=width, height=height, step=max(width, 1) * 3, nbytes=64, seed=i),
                      "bad_dims")
            expected_drop["image_bad_size"] += 1
        elif kind == 4:
            enc = str(rng.choice(["mono16", "rgba8", "16UC1"]))
            chans = {"mono16": 2, "rgba8": 4, "16UC1": 2}[enc]
            pub_image(_image(header, encoding=enc, step=W * chans - 1, nbytes=(W * chans - 1) * H, seed=i),
                      "bad_multibyte_step")
            expected_drop["image_bad_size"] += 1
        elif kind == 5:
            # a valid image, then the same stamp again and a slightly older one
            img, _ = synthetic_frame(i)
            pub_image(bgr_to_image_msg(img, header), "valid_unpaired")
            pub_image(bgr_to_image_msg(img, header), "bad_duplicate")
            pub_image(bgr_to_image_msg(img, header_for(i - 1)), "bad_backwards")
            expected_drop["image_duplicate_stamp"] += 1
            expected_drop["image_stamp_backwards"] += 1
        elif kind in (6, 7):
            # a valid image paired with garbage boxes (they reach the tracker/estimator path)
            img, box = synthetic_frame(i)
            pub_image(bgr_to_image_msg(img, header), "valid_paired")
            det = PersonDetectionArray(header=header)
            det.detections = [_det(*BAD_BOXES[int(j)]) for j in rng.integers(0, len(BAD_BOXES), 5)]
            if kind == 7:  # plus a good box twice under one id, and hundreds of tiny boxes
                good = (float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2, 16.0, 36.0)
                tid = int(rng.choice([7, 2**31 - 1]))  # extreme ids reach markers and the tracker too
                det.detections += [_det(*good, 0.9, tid), _det(*good, 0.8, tid)]
                det.detections += [_det(float(x), 10.0, 1.0, 1.0, 0.9) for x in rng.uniform(0, W, 300)]
            probe.det_pub.publish(det)
            sent["bad_detections"] += 1
        elif kind == 8:
            det = PersonDetectionArray(header=header_for(i, base_ns=0))  # stamps no image has
            det.detections = [_det(10, 10, 5, 5, 0.5, int(t)) for t in rng.integers(-(2**31), 2**31 - 1, 3)]
            probe.det_pub.publish(det)
            sent["bad_orphan_detections"] += 1
        else:
            # stamps jump to the far past and the far future (negative sec allowed by the type)
            far = header_for(i)
            far.stamp.sec = int(rng.choice([-(2**31), 2**31 - 1]))
            pub_image(_image(far, encoding="weird", seed=i), "bad_far_stamp")
            expected_drop["image_unknown_encoding"] += 1
        if i % 20 == 0:
            ros.spin_for(0.01)
            assert node.poll() is None, f"pose node died during fuzzing:\n{procs.log_text(node)}"

    bad_total = sum(v for k, v in sent.items() if k.startswith("bad_"))
    assert bad_total >= 1000
    ros.spin_for(1.0)
    assert node.poll() is None, procs.log_text(node)

    # good frames with fresh stamps still produce poses stamped with their own frames
    good_stamps = []
    for j in range(i + 10, i + 18):
        img, box = synthetic_frame(j)
        header = header_for(j)
        probe.image_pub.publish(bgr_to_image_msg(img, header))
        probe.det_pub.publish(boxes_to_detection_msg(box[None], np.array([0.9]), header))
        good_stamps.append(stamp_to_ns(header.stamp))
        ros.spin_for(0.1)
    ros.spin_until(lambda: {stamp_to_ns(m.header.stamp) for m in probe.poses} >= set(good_stamps[: -DELTA]),
                   30.0, "poses for the good frames after fuzzing")
    for m in probe.poses:
        if stamp_to_ns(m.header.stamp) in good_stamps:
            assert len(m.skeletons) == 1

    diag = probe.fresh_diagnostics()
    assert int(diag["count/image"]) == sent["image"] + len(good_stamps)
    for reason, n in expected_drop.items():
        assert int(diag.get(f"drop/{reason}", 0)) == n, (reason, diag)
    assert int(diag.get("drop/box_bad_box", 0)) >= 5 * (sent["valid_paired"] // 2)
    assert diag.get("drop/inference_error", "0") == "0", diag
    assert procs.stop(node) == 0, procs.log_text(node)


def test_fuzz_compressed_garbage(ros, procs, tmp_path, repo_root):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    # compressed images are decoded by the worker, once paired: each garbage image gets detections
    node = start_pose_node(procs, write_pose_params(
        tmp_path, repo_root, image_transport="compressed", image_qos="reliable", image_qos_depth=300,
        detections_qos_depth=300, queue_depth=300))
    pub = ros.node.create_publisher(CompressedImage, "image/compressed",
                                    QoSProfile(depth=300, reliability=ReliabilityPolicy.RELIABLE))
    probe = StreamProbe(ros, image_qos_depth=300)
    ros.spin_until(lambda: bool(probe.diagnostics) and pub.get_subscription_count() > 0
                   and probe.det_pub.get_subscription_count() > 0 or node.poll() is not None,
                   60.0, "the compressed pose node")
    rng = np.random.default_rng(7)
    n = 250
    for k in range(n):
        msg = CompressedImage(header=header_for(k), format=str(rng.choice(["jpeg", "png", "", "rgb8; jpeg"])))
        payload = rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()
        if k % 3 == 0:
            payload = b"\xff\xd8\xff\xe0" + payload  # JPEG magic, garbage after
        elif k % 3 == 1:
            payload = b"\x89PNG\r\n\x1a\n" + payload
        msg.data = payload
        pub.publish(msg)
        probe.det_pub.publish(boxes_to_detection_msg(np.array([[10.0, 10.0, 30.0, 40.0]]), np.array([0.9]),
                                                     msg.header))
        if k % 25 == 0:
            ros.spin_for(0.01)
    ros.spin_for(1.0)
    diag = probe.fresh_diagnostics()
    assert int(diag["count/image"]) == n
    assert int(diag["drop/image_decode_failed"]) == n
    assert node.poll() is None and procs.stop(node) == 0
