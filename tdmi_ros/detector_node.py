"""Demo companion: detect people in images and publish ``tdmi_msgs/PersonDetectionArray``.

Each output carries the header of the image it was computed on (the pose node pairs by stamp)
and ``track_id = NO_TRACK_ID`` (the pose node tracks). Detection runs on a worker thread; while it
is busy, newer images replace the waiting one (counted as skipped), so the detector never
builds latency. Parameters (node ``tdmi_detector`` in config/pose.yaml): see :data:`DETECTOR_PARAMS`.

Run: ``python -m tdmi_ros.detector_node --ros-args -p detector:=movenet``.
"""
from __future__ import annotations

if __name__ == "__main__":  # a program: a signal during the imports below waits for main (tdmi_ros.shutdown)
    from tdmi_ros.shutdown import hold_stop_signals

    hold_stop_signals()

import sys
import threading
from pathlib import Path
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from tdmi_ros import conversions as conv
from tdmi_ros.params import image_qos
from tdmi_ros.safety import CallbackGuard, NodeLog
from tdmi_ros.shutdown import StopRequest, ros_context, run_program, spin_until_stopped

NODE_NAME = "tdmi_detector"

DETECTOR_PARAMS: dict[str, tuple[Any, str]] = {
    "enabled": (False, "Launchers start this node only when true (or when asked on the command line)."),
    "image_topic": ("image", "Input image topic (relative)."),
    "image_transport": ("raw", "'raw' (sensor_msgs/Image) or 'compressed' (<image_topic>/compressed)."),
    "image_qos": ("sensor_data", "'sensor_data' (best effort) or 'reliable'."),
    "detections_topic": ("detections", "Output PersonDetectionArray topic (relative)."),
    "detector": ("movenet", "'movenet' (MoveNet MultiPose ONNX) or 'hog' (OpenCV HOG, needs opencv-contrib)."),
    "model_path": ("weights/movenet_multipose_lightning.onnx", "MoveNet ONNX file (relative to the working dir)."),
    "min_score": (0.2, "Keep people with at least this detector score."),
    "long_side_px": (256, "MoveNet input long side (multiple of 32; larger finds smaller people, slower)."),
    "num_threads": (1, "Inference threads."),
    "max_pending": (1, "Images waiting while the detector is busy; more are skipped (oldest first)."),
}


class DetectorNode(Node):
    """Subscribes images, runs a ``tdmi_core.detection`` detector on a worker thread, publishes boxes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for name, (default, description) in DETECTOR_PARAMS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        p = self.p = {name: self.get_parameter(name).value for name in DETECTOR_PARAMS}
        self.detector = self._build_detector()
        self.log = NodeLog(self.get_logger())
        self.guard = CallbackGuard(self.log)
        from tdmi_msgs.msg import PersonDetectionArray

        self.pub = self.create_publisher(
            PersonDetectionArray, p["detections_topic"], QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )
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
        self.counts = {"images": 0, "detected": 0, "skipped_busy": 0, "bad_image": 0}
        self._pending: list[Any] = []
        self._cond = threading.Condition()
        self._stop = False
        self._worker = threading.Thread(target=self._run, name="tdmi_detector_worker", daemon=True)
        self._worker.start()

    def _build_detector(self) -> Any:
        from tdmi_core.detection import HogPersonDetector, MoveNetDetector

        p = self.p
        if p["detector"] == "movenet":
            path = Path(p["model_path"])
            return MoveNetDetector(
                path, score_threshold=float(p["min_score"]), long_side_px=int(p["long_side_px"]),
                num_threads=int(p["num_threads"]),
            )
        if p["detector"] == "hog":
            return HogPersonDetector(score_threshold=float(p["min_score"]))
        raise ValueError(f"detector must be 'movenet' or 'hog', got {p['detector']!r}")

    def _on_image(self, msg: Any) -> None:
        with self._cond:
            self.counts["images"] += 1
            self._pending.append(msg)
            while len(self._pending) > int(self.p["max_pending"]):
                self._pending.pop(0)
                self.counts["skipped_busy"] += 1
            self._cond.notify()

    def _run(self) -> None:
        process = self.guard.wrap("detect", self._process)  # nothing one frame raises ends the loop
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                msg = self._pending.pop(0)
            process(msg)

    def _process(self, msg: Any) -> None:
        try:
            image = self.decode(msg)
        except conv.InputError as e:
            self.counts["bad_image"] += 1
            self.log.warning(f"bad_image:{e.reason}", f"skipping image ({e.reason}): {e}")
            return
        try:
            dets = self.detector.detect(image)
        except Exception as e:  # noqa: BLE001 - one failed frame must not stop the detector
            self.counts["detect_error"] = self.counts.get("detect_error", 0) + 1
            self.log.error("detect_error", f"detection failed: {type(e).__name__}: {e}")
            return
        self.pub.publish(conv.boxes_to_detection_msg(dets.boxes_xyxy, dets.scores, msg.header))
        self.counts["detected"] += 1

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._worker.join(5.0)
        self.get_logger().info(f"detector counts: {self.counts}, callback errors: {dict(self.guard.errors)}")


def main(argv: list[str] | None = None) -> int:
    """Run the detector until SIGINT/SIGTERM (exit 0); exit 2 if it cannot start."""
    return run_program(lambda stop: _run(list(sys.argv if argv is None else argv), stop))


def _run(argv: list[str], stop: StopRequest) -> int:
    if stop.requested:
        return 0
    with ros_context(argv):
        try:
            node = DetectorNode()
        except (ValueError, FileNotFoundError, RuntimeError, ImportError, ParameterException) as e:
            rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start the detector: {e}")
            return 2
        try:
            spin_until_stopped(node, stop)
        finally:
            node.stop()  # joins the worker: no thread may be inside ONNX Runtime when the process exits
            node.destroy_node()
    return 0


if __name__ == "__main__":
    sys.exit(main())
