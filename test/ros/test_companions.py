"""Demo companions as processes: the video publisher (rate, loop, compressed, errors) and the
detector's rate limit and start-up errors."""
from __future__ import annotations

import numpy as np
import pytest

from tdmi_ros.conversions import compressed_to_bgr, stamp_to_ns

pytestmark = pytest.mark.ros


def test_video_publisher_loops_compressed_with_increasing_stamps(ros, procs, video):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage

    got: list = []
    ros.node.create_subscription(CompressedImage, "cam/compressed", got.append,
                                 QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    # vtest.avi has 795 frames: starting at 790 with 12 frames forces a loop back to the start
    pub = procs.start(["-m", "tdmi_ros.video_publisher", "--ros-args", "-p", f"source:={video}",
                       "-p", "topic:=cam", "-p", "transport:=compressed", "-p", "start_frame:=790",
                       "-p", "loop:=true", "-p", "max_frames:=12", "-p", "rate_hz:=40.0", "-p", "resize_width:=160",
                       "-p", "wait_for_subscribers:=1", "-p", "frame_id:=cam0"], name="video")
    ros.spin_until(lambda: pub.poll() is not None, 60.0, "the publisher to finish")
    ros.spin_for(0.3)
    assert pub.returncode == 0, procs.log_text(pub)
    assert len(got) == 12
    stamps = [stamp_to_ns(m.header.stamp) for m in got]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    period_s = np.median(np.diff(stamps)) / 1e9
    assert 0.015 < period_s < 0.05, f"published every {period_s:.3f} s, asked for 40 Hz"
    img = compressed_to_bgr(got[0])
    assert img.shape == (120, 160, 3) and got[0].header.frame_id == "cam0"


def test_detector_rate_limit_detects_the_first_image_of_each_stamp_interval(ros, procs, video, movenet):
    import cv2
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from tdmi_msgs.msg import PersonDetectionArray

    from tdmi_ros.conversions import bgr_to_image_msg

    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    got: list = []
    ros.node.create_subscription(PersonDetectionArray, "detections", got.append, reliable)
    images = ros.node.create_publisher(Image, "image", reliable)
    detector = procs.start(["-m", "tdmi_ros.detector_node", "--ros-args", "-p", f"model_path:={movenet}",
                            "-p", "image_qos:=reliable", "-p", "max_pending:=100", "-p", "max_rate_hz:=10.0",
                            "-p", "wait_for_subscribers:=1"], name="detector")
    ros.spin_until(lambda: images.get_subscription_count() > 0 or detector.poll() is not None, 60.0,
                   "the detector to subscribe")
    ok, frame = cv2.VideoCapture(str(video)).read()
    assert ok
    stamps_ms = list(range(1000, 1500, 40))  # a 25 Hz camera for half a second, limited to 10 Hz
    intervals = sorted({t // 100 for t in stamps_ms})
    for n, interval in enumerate(intervals):  # one interval's images at a time: the reader keeps only 5
        for t in (t for t in stamps_ms if t // 100 == interval):
            header = Header(frame_id="cam")
            header.stamp.sec, header.stamp.nanosec = divmod(t * 1_000_000, 1_000_000_000)
            images.publish(bgr_to_image_msg(frame, header))
        ros.spin_until(lambda n=n: len(got) > n or detector.poll() is not None, 60.0,
                       lambda n=n: f"the detections of interval {n} (have {len(got)} arrays)")
    ros.spin_for(0.5)  # nothing else may come
    assert [stamp_to_ns(m.header.stamp) // 1_000_000 for m in got] == [1000, 1120, 1200, 1320, 1400]  # first of each
    assert all(len(m.detections) >= 1 for m in got)  # vtest's first frame has people


@pytest.mark.parametrize(
    ("module", "params", "message"),
    [
        ("tdmi_ros.video_publisher", ["source:=does_not_exist.mp4"], "not found"),
        ("tdmi_ros.video_publisher", ["source:=57"], "cannot open"),
        ("tdmi_ros.video_publisher", ["source:=x.mp4", "transport:=theora"], "transport"),
        ("tdmi_ros.detector_node", ["model_path:=missing.onnx"], "model_path 'missing.onnx' not found"),
        ("tdmi_ros.detector_node", ["detector:=yolo"], "detector must be"),
    ],
)
def test_companions_refuse_bad_settings_with_clear_errors(procs, module, params, message):
    args = [arg for p in params for arg in ("-p", p)]
    proc = procs.start(["-m", module, "--ros-args", *args], name="companion")
    assert proc.wait(60) == 2
    assert message in procs.log_text(proc)
