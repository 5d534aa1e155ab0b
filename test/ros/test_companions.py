"""Demo companions as processes: the video publisher (rate, loop, compressed, errors) and the
detector's start-up errors."""
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
