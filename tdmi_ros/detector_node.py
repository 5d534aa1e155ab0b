"""Demo companion: detect people in images and publish ``tdmi_msgs/PersonDetectionArray``.

Each output carries the header of the image it was computed on (the pose node pairs by stamp)
and ``track_id = NO_TRACK_ID`` (the pose node tracks). Decoding and detection run on the runtime's
worker thread (:class:`tdmi_core.runtime.worker.FrameWorker`, as the pose node's inference); while
it is busy, newer images replace the waiting ones (counted as skipped), so the detector never
builds latency. Parameters (node ``tdmi_detector`` in config/pose.yaml): see :data:`DETECTOR_PARAMS`.

Run: ``python -m tdmi_ros.detector_node --ros-args -p detector:=movenet``.
"""
from __future__ import annotations

if __name__ == "__main__":  # a program: a signal during the imports below waits for main (tdmi_ros.shutdown)
    from tdmi_ros.shutdown import hold_stop_signals

    hold_stop_signals()

import sys
import threading
import time
from pathlib import Path
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from tdmi_core.runtime.stats import PipelineStats
from tdmi_core.runtime.worker import SKIP_REASON, DroppedFrame, FrameWorker
from tdmi_ros import conversions as conv
from tdmi_ros.qos import image_qos
from tdmi_ros.resources import resolve_data_file
from tdmi_ros.safety import CallbackGuard, NodeLog
from tdmi_ros.shutdown import run_node, run_program, spin_until_stopped
from tdmi_ros.sync import StampRateLimit

NODE_NAME = "tdmi_detector"

DETECTOR_PARAMS: dict[str, tuple[Any, str]] = {
    "image_topic": ("image", "Input image topic (relative)."),
    "image_transport": ("raw", "'raw' (sensor_msgs/Image) or 'compressed' (<image_topic>/compressed)."),
    "image_qos": ("sensor_data", "'sensor_data' (best effort) or 'reliable'."),
    "detections_topic": ("detections", "Output PersonDetectionArray topic (relative)."),
    "detector": ("movenet", "'movenet' (MoveNet MultiPose ONNX) or 'hog' (OpenCV HOG, needs opencv-contrib)."),
    "model_path": ("weights/movenet_multipose_lightning.onnx", "MoveNet ONNX file (relative: the working directory, else the package's installed copy)."),
    "min_score": (0.2, "Keep people with at least this detector score."),
    "long_side_px": (256, "MoveNet input long side (multiple of 32; larger finds smaller people, slower)."),
    "num_threads": (1, "Inference threads."),
    "max_pending": (1, "Images waiting while the detector is busy; more are skipped (oldest first)."),
    "max_rate_hz": (15.0, "Detect at most one image per 1/max_rate_hz of image stamps (0.0 = every image). The pose "
                          "node answers only images with detections: 15 keeps a 2-core CPU pipeline at 15 poses/s "
                          "from a faster camera; raise it (or 0.0) where inference is faster."),
    "wait_for_subscribers": (0, "Hold the first detections until this many subscriptions have matched (demos and "
                                "tests: a reader matched later would never get them)."),
}
WAIT_FOR_SUBSCRIBERS_S = 60.0  # then publish anyway, with a warning


class DetectorNode(Node):
    """Subscribes images, runs a ``tdmi_core.detection`` detector on a worker thread, publishes boxes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for name, (default, description) in DETECTOR_PARAMS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        p = self.p = {name: self.get_parameter(name).value for name in DETECTOR_PARAMS}
        self.detector = self._build_detector()
        from tdmi_msgs.msg import PersonDetectionArray

        self.pub = self.create_publisher(
            PersonDetectionArray, p["detections_topic"], QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )
        self._readers_matched = int(p["wait_for_subscribers"]) <= 0
        self._rate_limit = StampRateLimit(float(p["max_rate_hz"]))
        self._stopping = threading.Event()
        self.stats = PipelineStats()
        self.log = NodeLog(self.get_logger())
        self.guard = CallbackGuard(self.log, on_error=lambda name: self.stats.drop(f"callback_error_{name}"))
        self.worker: FrameWorker[Any] = FrameWorker(
            self._detect, self.stats, queue_depth=int(p["max_pending"]), on_drop=self._drop,
            error_reason="detect_error", name="tdmi_detector_worker",
        )
        self.worker.start()
        qos = image_qos(p["image_qos"], depth=5)
        if p["image_transport"] == "compressed":
            from sensor_msgs.msg import CompressedImage

            self.decode = conv.compressed_to_bgr
            self.sub = self.create_subscription(
                CompressedImage, f"{p['image_topic']}/compressed", self.guard.wrap("image", self._on_image), qos)
        else:
            from sensor_msgs.msg import Image

            self.decode = conv.image_to_bgr
            self.sub = self.create_subscription(Image, p["image_topic"], self.guard.wrap("image", self._on_image), qos)

    def _build_detector(self) -> Any:
        from tdmi_core.detection import make_detector

        p = self.p
        options: dict[str, Any] = {"score_threshold": float(p["min_score"])}
        model_path = Path(p["model_path"])
        if p["detector"] == "movenet":
            options.update(long_side_px=int(p["long_side_px"]), num_threads=int(p["num_threads"]))
            model_path = resolve_data_file(model_path, "model_path")  # else the model installed with the package
        return make_detector(p["detector"], model_path, **options)

    def _on_image(self, msg: Any) -> None:
        self.stats.tick("image")
        if not self._rate_limit.accept(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec):
            self.stats.tick("rate_limited")  # by configuration: not a drop
            return
        self.worker.submit(msg)

    def _detect(self, msg: Any) -> None:
        """Worker thread: decode, detect, publish with the image's header."""
        try:
            image = self.decode(msg)
        except conv.InputError as e:
            raise DroppedFrame(f"image_{e.reason}", str(e)) from e
        dets = self.detector.detect(image)
        if not self._readers_matched:
            self._wait_for_readers()
        self.pub.publish(conv.boxes_to_detection_msg(dets.boxes_xyxy, dets.scores, msg.header))
        self.stats.tick("detected")

    def _wait_for_readers(self) -> None:
        """Worker thread, first detections only: until ``wait_for_subscribers`` readers have matched."""
        wanted, deadline = int(self.p["wait_for_subscribers"]), time.monotonic() + WAIT_FOR_SUBSCRIBERS_S
        while self.pub.get_subscription_count() < wanted and not self._stopping.wait(0.01):
            if time.monotonic() > deadline:
                self.get_logger().warning(f"only {self.pub.get_subscription_count()} of {wanted} detections "
                                          f"subscribers after {WAIT_FOR_SUBSCRIBERS_S:.0f} s; publishing anyway")
                break
        self._readers_matched = True

    def _drop(self, reason: str, message: str) -> None:
        self.stats.drop(reason)
        self.log.warning(f"drop:{reason}", f"skipping image ({reason}): {message}")

    def stop(self) -> None:
        """Stop the worker, free the detector and log what happened."""
        self._stopping.set()
        self.worker.stop(5.0)
        # release the ONNX Runtime session now, not during interpreter finalization
        self.detector = None
        drops = self.stats.drops()
        self.get_logger().info(
            f"detector: {self.stats.counts()}, skipped while busy {drops.pop(SKIP_REASON, 0)}, dropped {drops}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the detector until SIGINT/SIGTERM (exit 0); exit 2 if it cannot start."""
    return run_program(lambda stop: run_node(
        list(sys.argv if argv is None else argv), stop, NODE_NAME, DetectorNode, lambda node: spin_until_stopped(node, stop),
        start_errors=(ValueError, FileNotFoundError, RuntimeError, ImportError, ParameterException),
        cleanup=DetectorNode.stop,  # joins the worker: no thread may be inside ONNX Runtime when the process exits
    ))


if __name__ == "__main__":
    sys.exit(main())
