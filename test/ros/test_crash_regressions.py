"""The three ways hostile input killed the pose node (issue 15), each replayed against the node
process over DDS. Each test failed on the code before the fix."""
from __future__ import annotations

import signal
import struct
import zlib

import numpy as np
import pytest
from ros_harness import StreamProbe, header_for, start_pose_node, synthetic_frame, write_pose_params

from tdmi_ros.conversions import bgr_to_compressed_msg, bgr_to_image_msg, boxes_to_detection_msg, stamp_to_ns

pytestmark = pytest.mark.ros

DELTA = 2


def forged_png(width: int, height: int) -> bytes:
    """A real 8x8 PNG whose IHDR (checksum fixed) declares ``width`` x ``height``: a few hundred bytes."""
    import cv2

    data = bytearray(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def forged_jpeg(width: int, height: int) -> bytes:
    """A real 8x8 JPEG whose frame header (SOF0) declares ``width`` x ``height``."""
    import cv2

    data = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def forged_bmp(width: int, height: int) -> bytes:
    """A BMP file header and a BITMAPINFOHEADER declaring the size (24 bits per pixel), no pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def publish_frame(probe: StreamProbe, i: int, base_ns: int = 1_700_000_000_000_000_000, image_pub=None) -> int:
    img, box = synthetic_frame(i)
    header = header_for(i, base_ns=base_ns)
    if image_pub is None:
        probe.image_pub.publish(bgr_to_image_msg(img, header))
    else:
        image_pub.publish(bgr_to_compressed_msg(img, header))
    probe.det_pub.publish(boxes_to_detection_msg(box[None], np.array([0.9]), header))
    return stamp_to_ns(header.stamp)


def test_compressed_headers_declaring_huge_images_are_dropped_before_decoding(ros, procs, tmp_path, repo_root):
    """Crash 1: cv2.imdecode raised (pixels <= CV_IO_MAX_IMAGE_PIXELS) inside the callback."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage

    node = start_pose_node(procs, write_pose_params(tmp_path, repo_root, image_transport="compressed",
                                                    image_qos="reliable", image_qos_depth=50, queue_depth=20))
    pub = ros.node.create_publisher(CompressedImage, "image/compressed",
                                    QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    probe = StreamProbe(ros)
    ros.spin_until(lambda: (bool(probe.diagnostics) and pub.get_subscription_count() > 0
                            and probe.det_pub.get_subscription_count() > 0) or node.poll() is not None,
                   60.0, "the compressed pose node")
    bombs = [forged_png(65535, 65535), forged_jpeg(65500, 65500), forged_bmp(100_000, 100_000)]
    for k, data in enumerate(bombs):
        msg = CompressedImage(header=header_for(k), format="png")
        msg.data = data
        pub.publish(msg)
    stamps = [publish_frame(probe, i, image_pub=pub) for i in range(10, 10 + DELTA + 3)]
    ros.spin_until(lambda: len(probe.poses) >= 3 or node.poll() is not None, 30.0, "poses after the bombs")
    assert node.poll() is None, procs.log_text(node)
    assert [stamp_to_ns(m.header.stamp) for m in probe.poses] == stamps[:3]
    diag = probe.fresh_diagnostics()
    assert diag["drop/image_bad_size"] == "3", diag
    assert procs.stop(node) == 0, procs.log_text(node)


def test_a_drop_after_a_source_restart_does_not_kill_the_node(ros, procs, tmp_path, repo_root):
    """Crash 2: the restart warning and the throttled drop warning were one rclpy call site with two
    filter settings (ValueError: Requested logging filters cannot be changed between calls)."""
    node = start_pose_node(procs, write_pose_params(tmp_path, repo_root, image_qos="reliable", queue_depth=20))
    probe = StreamProbe(ros)
    probe.wait_ready(node, procs)
    for i in range(DELTA + 2):
        publish_frame(probe, i)
    ros.spin_until(lambda: len(probe.poses) >= 2, 30.0, "the first sequence")
    restart_ns = 1_700_000_000_000_000_000 - 60_000_000_000  # the publisher restarted with stamps 60 s back
    publish_frame(probe, 0, base_ns=restart_ns)
    bad = bgr_to_image_msg(synthetic_frame(1)[0], header_for(1, base_ns=restart_ns))
    bad.encoding = "yuv422_yuy2"  # dropped: unknown encoding
    probe.image_pub.publish(bad)
    stamps = [publish_frame(probe, i, base_ns=restart_ns) for i in range(2, 2 + DELTA + 2)]
    ros.spin_until(lambda: stamps[1] in {stamp_to_ns(m.header.stamp) for m in probe.poses} or node.poll() is not None,
                   30.0, "poses of the new sequence")
    assert node.poll() is None, procs.log_text(node)
    diag = probe.fresh_diagnostics()
    assert diag["count/stream_reset"] == "1" and diag["drop/image_unknown_encoding"] == "1", diag
    assert "Traceback" not in procs.log_text(node)
    assert procs.stop(node) == 0, procs.log_text(node)


def test_sigterm_while_activating_exits_0(procs, tmp_path, repo_root):
    """Crash 3: rclpy's handler invalidated the context during activation and rclpy.spin raised
    RCLError (failed to initialize wait set: the given context is not valid) -> exit 1."""
    node = start_pose_node(procs, write_pose_params(tmp_path, repo_root))
    procs.wait_for_log(node, "configured:")  # on_configure's last line: on_activate (model loading) is running
    node.send_signal(signal.SIGTERM)
    assert node.wait(30) == 0, procs.log_text(node)
    log = procs.log_text(node)
    assert "Traceback" not in log and "Error" not in log, log
