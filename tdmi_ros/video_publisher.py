"""Demo companion: publish a video file or a camera as ``sensor_msgs/Image`` at its real rate.

Each frame is stamped with the node clock when it is published (so stamps increase) and carries
``frame_id``. At the end of a file the node loops or exits 0. Parameters (node ``tdmi_video_publisher``
in config/pose.yaml): ``source`` (file path or camera index), ``topic``, ``transport``, ``rate_hz``,
``loop``, ``max_frames``, ``start_frame``, ``resize_width``, ``frame_id``, ``qos``, ``qos_depth``,
``wait_for_subscribers``.

Run: ``python -m tdmi_ros.video_publisher --ros-args -p source:=video.mp4``.
"""
from __future__ import annotations

if __name__ == "__main__":  # a program: a signal during the imports below waits for main (tdmi_ros.shutdown)
    from tdmi_ros.shutdown import hold_stop_signals

    hold_stop_signals()

import sys
import time
from pathlib import Path
from typing import Any

import cv2
import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node

from tdmi_ros import conversions as conv
from tdmi_ros.qos import image_qos
from tdmi_ros.shutdown import StopRequest, run_node, run_program

NODE_NAME = "tdmi_video_publisher"

VIDEO_PARAMS: dict[str, tuple[Any, str]] = {
    "source": ("", "Video file path (relative to the working directory) or a camera index such as '0'."),
    "topic": ("image", "Image topic (relative). With transport=compressed: <topic>/compressed."),
    "transport": ("raw", "'raw' (sensor_msgs/Image, bgr8) or 'compressed' (JPEG sensor_msgs/CompressedImage)."),
    "rate_hz": (0.0, "Publish rate; 0 = the file's own frame rate (cameras: as fast as they deliver)."),
    "loop": (False, "Start the file again at its end (stamps keep increasing)."),
    "max_frames": (0, "Stop after this many frames (0 = no limit)."),
    "start_frame": (0, "Skip this many frames at the start of the file."),
    "resize_width": (0, "Resize frames to this width, keeping the aspect ratio (0 = keep)."),
    "frame_id": ("camera", "header.frame_id of every image."),
    "qos": ("reliable", "'reliable' or 'sensor_data' (best effort)."),
    "qos_depth": (5, "Publisher history depth."),
    "wait_for_subscribers": (0, "Hold the first frame until this many subscriptions have matched (tests)."),
}


class VideoPublisher(Node):
    """Reads frames with OpenCV and publishes them; :meth:`run` drives the loop on the caller's thread."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for name, (default, description) in VIDEO_PARAMS.items():
            # source may be a path or a camera index: `-p source:=0` arrives as an integer
            self.declare_parameter(name, default, ParameterDescriptor(description=description,
                                                                      dynamic_typing=name == "source"))
        p = {name: self.get_parameter(name).value for name in VIDEO_PARAMS}
        self.p = p
        if p["transport"] not in ("raw", "compressed"):
            raise ValueError(f"transport must be 'raw' or 'compressed', got {p['transport']!r}")
        if p["qos"] not in ("reliable", "sensor_data"):
            raise ValueError(f"qos must be 'reliable' or 'sensor_data', got {p['qos']!r}")
        source = str(p["source"])
        if not source:
            raise ValueError("parameter 'source' is empty: give a video file path or a camera index")
        self.is_camera = source.isdigit()
        if not self.is_camera and not Path(source).is_file():
            raise FileNotFoundError(f"video file {source!r} not found (paths are relative to the working directory)")
        self.source = int(source) if self.is_camera else source
        self.capture = self._open()
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.period_s = 1.0 / p["rate_hz"] if p["rate_hz"] > 0 else (0.0 if self.is_camera else 1.0 / (fps or 30.0))
        qos = image_qos(p["qos"], p["qos_depth"])
        if p["transport"] == "compressed":
            from sensor_msgs.msg import CompressedImage

            self.pub = self.create_publisher(CompressedImage, f"{p['topic']}/compressed", qos)
        else:
            from sensor_msgs.msg import Image

            self.pub = self.create_publisher(Image, p["topic"], qos)
        self.published = 0
        self.get_logger().info(
            f"publishing {source} on {self.pub.topic_name} every {self.period_s * 1000:.1f} ms (file fps {fps:.2f})"
        )

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(self.source)
        if not capture.isOpened():
            raise RuntimeError(f"OpenCV cannot open video source {self.source!r}")
        for _ in range(int(self.p["start_frame"])):
            capture.grab()
        return capture

    def _read(self) -> Any:
        ok, frame = self.capture.read()
        if not ok and self.p["loop"] and not self.is_camera:
            self.capture.release()
            self.capture = self._open()
            ok, frame = self.capture.read()
        if not ok:
            return None
        width = int(self.p["resize_width"])
        if width > 0 and frame.shape[1] != width:
            height = round(frame.shape[0] * width / frame.shape[1])
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        return frame

    def wait_for_subscribers(self, stop: StopRequest, timeout_s: float = 60.0) -> None:
        wanted = int(self.p["wait_for_subscribers"])
        deadline = time.monotonic() + timeout_s
        while wanted and self.pub.get_subscription_count() < wanted and not stop.requested:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.pub.get_subscription_count()} of {wanted} subscribers after {timeout_s} s")
            stop.wait(0.05)

    def run(self, stop: StopRequest | None = None) -> int:
        """Publish until the source ends (returns 0), ``max_frames`` frames are out, or ``stop``."""
        from std_msgs.msg import Header

        stop = stop or StopRequest()
        self.wait_for_subscribers(stop)
        max_frames = int(self.p["max_frames"])
        next_t = time.monotonic()
        while rclpy.ok(context=self.context) and not stop.requested:
            if max_frames and self.published >= max_frames:
                break
            frame = self._read()
            if frame is None:
                break
            delay = next_t - time.monotonic()
            if delay > 0 and stop.wait(delay):
                break
            next_t = max(next_t + self.period_s, time.monotonic() - self.period_s)  # no burst after a stall
            header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.p["frame_id"])
            if self.p["transport"] == "compressed":
                self.pub.publish(conv.bgr_to_compressed_msg(frame, header))
            else:
                self.pub.publish(conv.bgr_to_image_msg(frame, header))
            self.published += 1
        self.get_logger().info(f"published {self.published} frames")
        self.capture.release()
        if not stop.requested:
            stop.wait(0.5)  # let reliable writers deliver the last frames before the participant goes
        return 0


def main(argv: list[str] | None = None) -> int:
    """Publish until the source ends or SIGINT/SIGTERM (exit 0); exit 2 on bad settings."""
    return run_program(lambda stop: run_node(
        list(sys.argv if argv is None else argv), stop, NODE_NAME, VideoPublisher, lambda node: node.run(stop),
        start_errors=(ValueError, FileNotFoundError, RuntimeError, ParameterException),
        cleanup=lambda node: node.capture.release(),
    ))


if __name__ == "__main__":
    sys.exit(main())
