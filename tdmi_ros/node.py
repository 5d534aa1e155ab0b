"""The real-time TDMI pose node (a lifecycle node; autostarts from ``main``).

Data path: image + detections callbacks (check the image header, pair by stamp; never decode or
infer) → :class:`tdmi_core.runtime.pipeline.PosePipeline` worker (decode the paired frame, read its
boxes, tracker → streaming TDMI estimator) → publishers (``poses``, ``poses/markers``, optional
``poses/image``, ``/diagnostics``). Every output carries the header of the frame it describes
(frame t, published when its window is complete: when frame t+delta has arrived for the symmetric
window, at once for a causal or single-frame model). Frames dropped before the worker reaches them
(unpaired, or skipped while compute is behind) are never decoded.

Cameras: with ``cameras: [a, b]`` one node serves several cameras, each on its own topics
(``a/image``, ``a/detections`` → ``a/poses``, ...) with its own pairing and tracker; each worker step
takes a frame of every camera and runs their persons through one backend call.

Lifecycle: parameters are declared in ``__init__``; ``on_configure`` reads and validates them and
creates the publishers; ``on_activate`` loads the model (missing/corrupt weights → FAILURE, and
``main`` exits non-zero), starts the worker and subscribes; ``on_deactivate`` undoes that.

Run: ``ros2 run tdmi_ros pose_node --ros-args --params-file config/pose.yaml``, ``python -m tdmi_ros.node ...`` or ``tdmi-pose``.
"""
from __future__ import annotations

if __name__ == "__main__":  # a program: a signal during the imports below waits for main (tdmi_ros.shutdown)
    from tdmi_ros.shutdown import hold_stop_signals

    hold_stop_signals()

import argparse
import functools
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.utilities import remove_ros_args

from tdmi_core.runtime.pipeline import DroppedFrame, FrameInput, FrameJob, PosePipeline
from tdmi_core.runtime.stats import PipelineStats
from tdmi_core.runtime.types import FramePoses
from tdmi_ros import conversions as conv
from tdmi_ros.diagnostics import ERROR, assess, stats_to_diagnostics
from tdmi_ros.memory_bound import return_large_blocks_to_os
from tdmi_ros.params import PoseNodeConfig, pose_parameters
from tdmi_ros.qos import image_qos
from tdmi_ros.resources import resolve_data_file
from tdmi_ros.safety import CallbackGuard, NodeLog
from tdmi_ros.shutdown import StopRequest, ros_context, run_program, spin_until_stopped
from tdmi_ros.sync import AddResult, Pair, StampPairer

NODE_NAME = "tdmi_pose"


@dataclass
class CameraIO:
    """One camera served by the node: its topic prefix, stamp pairing and output publishers."""

    index: int
    name: str  # namespace of its topics; "" = the plain topics (one camera)
    pairer: StampPairer
    pubs: dict[str, Any] = field(default_factory=dict)

    def topic(self, name: str) -> str:
        """``name`` in this camera's namespace (also the key of its counters in the diagnostics)."""
        return f"{self.name}/{name}" if self.name else name


class PoseNode(LifecycleNode):
    """Multi-person, multi-frame pose estimation on an image + detection stream."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, description) in pose_parameters().items():
            self.declare_parameter(
                name, list(default) if isinstance(default, tuple) else default,
                ParameterDescriptor(description=description),
            )
        self.cfg: PoseNodeConfig | None = None
        self.failure: str | None = None  # why the last transition failed (for main's exit message)
        self.stats = PipelineStats()
        self.cameras: list[CameraIO] = []
        self.pipeline: PosePipeline | None = None
        self._lock = threading.Lock()  # pairer state (callbacks, timers)
        self._pubs: dict[str, Any] = {}  # node-wide publishers (diagnostics)
        self._subs: list[Any] = []
        self._timers: list[Any] = []
        self.estimator_description = ""
        # everything that can repeat is logged through self.log; every callback runs guarded
        self.log = NodeLog(self.get_logger())
        self.guard = CallbackGuard(self.log, on_error=lambda name: self.stats.drop(f"callback_error_{name}"))
        self._callback_errors_reported = 0

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            values = {name: self.get_parameter(name).value for name in pose_parameters()}
            cfg = PoseNodeConfig.from_dict(values)
            if cfg.runtime.weights:
                try:  # a relative path not in the working directory: the weights installed with the package
                    weights = resolve_data_file(cfg.runtime.weights, "runtime.weights")
                    cfg = replace(cfg, runtime=replace(cfg.runtime, weights=str(weights)))
                except FileNotFoundError as e:
                    if not cfg.runtime.allow_untrained:
                        return self._fail(f"no trained weights: {e}. Set runtime.weights to a TDMI weights file "
                                          "(runtime.allow_untrained: true runs an untrained model, for tests only)")
            self.cfg = cfg
            if cfg.detections_type == "vision_msgs":
                try:
                    import vision_msgs.msg  # noqa: F401
                except ImportError as e:
                    raise ValueError(
                        "detections_type is 'vision_msgs' but vision_msgs is not installed; install "
                        "ros-<distro>-vision-msgs or use detections_type:=tdmi"
                    ) from e
        except Exception as e:  # noqa: BLE001 - any bad parameter fails configure with its message
            return self._fail(f"invalid parameters: {e}")
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image
        from tdmi_msgs.msg import Skeleton2DArray
        from visualization_msgs.msg import MarkerArray

        out_qos = QoSProfile(depth=cfg.output_qos_depth, reliability=ReliabilityPolicy.RELIABLE)
        # /poses keeps its last messages for readers that match late (a recorder started with the node):
        # transient-local writers serve volatile readers too, so no subscriber is shut out
        poses_qos = QoSProfile(depth=cfg.output_qos_depth, reliability=ReliabilityPolicy.RELIABLE,
                               durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for index, name in enumerate(cfg.cameras):
            camera = CameraIO(index, name, StampPairer(
                max_wait_s=cfg.pairing_max_wait_s,
                max_pending=cfg.pairing_max_pending,
                slop_ns=int(cfg.pairing_slop_s * 1e9),
                reset_backwards_s=cfg.stamp_reset_s,
            ))
            pubs = camera.pubs
            pubs["poses"] = self.create_lifecycle_publisher(Skeleton2DArray, camera.topic(cfg.poses_topic), poses_qos)
            if cfg.publish_markers:
                pubs["markers"] = self.create_lifecycle_publisher(MarkerArray, camera.topic(cfg.markers_topic), out_qos)
            if cfg.publish_annotated_image:
                pubs["image"] = self.create_lifecycle_publisher(Image, camera.topic(cfg.annotated_image_topic), out_qos)
            self.cameras.append(camera)
        self._pubs["diagnostics"] = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        self.get_logger().info(f"configured: {cfg}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        from tdmi_core.runtime.loading import ModelLoadError, build_estimator
        from tdmi_core.tracking import IouTracker

        cfg = self.cfg
        assert cfg is not None and self.cameras
        try:
            estimator, self.estimator_description = build_estimator(cfg.runtime, delta=cfg.delta)
        except ModelLoadError as e:
            return self._fail(str(e))
        if "UNTRAINED" in self.estimator_description:
            self.get_logger().error(
                "*** runtime.allow_untrained is set: running an UNTRAINED model; poses are meaningless. "
                "Use this for pipeline tests only. ***"
            )
        self.pipeline = PosePipeline(
            estimator, lambda: IouTracker(cfg.tracker_iou_threshold, cfg.tracker_max_missed_frames),
            self._publish_result, self.stats,
            queue_depth=cfg.queue_depth, max_frame_age_s=cfg.max_frame_age_s,
            flush_after_idle_s=cfg.flush_after_idle_s, on_drop=self._drop,
        )
        self.pipeline.start()
        self._subscribe(cfg)
        self._timers.append(self.create_timer(
            cfg.diagnostics_period_s, self.guard.wrap("diagnostics", self._publish_diagnostics)))
        self._timers.append(self.create_timer(
            min(0.1, cfg.pairing_max_wait_s / 2), self.guard.wrap("expire", self._expire)))
        self.get_logger().info(f"active: {self.estimator_description}; delta={cfg.delta}, window "
                               f"{estimator.window} (/poses {estimator.lag} frame(s) behind the camera), "
                               f"cameras {[c.name or '(plain topics)' for c in self.cameras]}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown_active()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown_active()
        for pub in [*self._pubs.values(), *(p for c in self.cameras for p in c.pubs.values())]:
            self.destroy_lifecycle_publisher(pub)
        self._pubs.clear()
        self.cameras = []
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown_active()
        return super().on_shutdown(state)

    def _fail(self, message: str) -> TransitionCallbackReturn:
        self.failure = message
        self.get_logger().fatal(message)
        return TransitionCallbackReturn.FAILURE

    def _subscribe(self, cfg: PoseNodeConfig) -> None:
        from sensor_msgs.msg import CompressedImage, Image

        images_qos = image_qos(cfg.image_qos, cfg.image_qos_depth)
        det_qos = QoSProfile(depth=cfg.detections_qos_depth, reliability=ReliabilityPolicy.RELIABLE)
        if cfg.detections_type == "vision_msgs":
            from vision_msgs.msg import Detection2DArray

            det_type: type = Detection2DArray
        else:
            from tdmi_msgs.msg import PersonDetectionArray

            det_type = PersonDetectionArray
        for camera in self.cameras:
            if cfg.image_transport == "compressed":
                self._subs.append(self.create_subscription(
                    CompressedImage, camera.topic(f"{cfg.image_topic}/compressed"),
                    self.guard.wrap("image", functools.partial(self._on_compressed, camera=camera)), images_qos))
            else:
                self._subs.append(self.create_subscription(
                    Image, camera.topic(cfg.image_topic),
                    self.guard.wrap("image", functools.partial(self._on_image, camera=camera)), images_qos))
            self._subs.append(self.create_subscription(
                det_type, camera.topic(cfg.detections_topic),
                self.guard.wrap("detections", functools.partial(self._on_detections, camera=camera)), det_qos))

    def _teardown_active(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        for timer in self._timers:
            self.destroy_timer(timer)
        self._subs.clear()
        self._timers.clear()
        if self.pipeline is not None:
            self.pipeline.stop()
            self.pipeline = None  # frees the model
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:
                pass

    # ------------------------------------------------------------------ callbacks (thin, never decode or infer)
    # (camera None = the first: the one camera of a node without a cameras list)
    def _on_image(self, msg: Any, camera: CameraIO | None = None) -> None:
        self._accept_image(msg, camera or self.cameras[0], conv.image_to_bgr, check=conv.check_image)

    def _on_compressed(self, msg: Any, camera: CameraIO | None = None) -> None:
        self._accept_image(msg, camera or self.cameras[0], conv.compressed_to_bgr, check=conv.check_compressed)

    def _accept_image(self, msg: Any, camera: CameraIO, decode: Callable[..., Any],
                      check: Callable[..., None] | None = None) -> None:
        """Pair the image by stamp; ``check`` validates its header (no pixel is touched), decoding waits for the worker."""
        now = time.monotonic()
        self.stats.tick(camera.topic("image"), now)
        assert self.cfg is not None
        if check is not None:
            try:
                check(msg, max_pixels=self.cfg.max_image_pixels)
            except conv.InputError as e:
                self._drop(f"image_{e.reason}", str(e))
                return
        with self._lock:
            if not self.cameras:
                return
            result = camera.pairer.add_image(conv.stamp_to_ns(msg.header.stamp), (msg, decode, now), now)
        self._dispatch(result, camera, msg.header)

    def _on_detections(self, msg: Any, camera: CameraIO | None = None) -> None:
        camera = camera or self.cameras[0]
        now = time.monotonic()
        self.stats.tick(camera.topic("detections"), now)
        with self._lock:
            if not self.cameras:
                return
            result = camera.pairer.add_detections(conv.stamp_to_ns(msg.header.stamp), msg, now)
        self._dispatch(result, camera, msg.header)

    def _dispatch(self, result: AddResult, camera: CameraIO, offered: Any) -> None:
        """Act on what ``camera``'s pairer made of the message with header ``offered``."""
        pipeline = self.pipeline
        if pipeline is None:
            return
        if result.dropped is not None:  # counted by the pairer (mirrored into diagnostics)
            stamp_ns = conv.stamp_to_ns(offered.stamp)
            self.log.warning(f"drop:{result.dropped}",
                             f"dropped input ({result.dropped}): stamp {stamp_ns}, frame_id {offered.frame_id!r}")
        if result.reset:
            self.stats.tick("stream_reset")
            self.log.warning("stream_reset", f"{camera.topic('image')} stamps jumped backwards: source restarted, "
                             "starting a new sequence")
            pipeline.request_reset(camera.index)
        for pair in result.pairs:
            msg, _, received_s = pair.image
            det_frame = str(pair.detections.header.frame_id)
            if det_frame not in ("", msg.header.frame_id):  # boxes from another camera cannot be used here
                self._drop("frame_id_mismatch", f"image frame_id {msg.header.frame_id!r} but detections "
                                                f"{det_frame!r} (stamp {pair.stamp_ns})")
                continue
            self.stats.tick("paired")
            pipeline.submit(FrameJob(token=(camera.index, msg.header), load=functools.partial(self._load_frame, pair),
                                     received_s=received_s, stream=camera.index))

    def _load_frame(self, pair: Pair) -> FrameInput:
        """Worker thread: decode a paired image and read its boxes (clipped to the decoded image's size)."""
        cfg = self.cfg
        assert cfg is not None
        msg, decode, _ = pair.image
        try:
            image = decode(msg, max_pixels=cfg.max_image_pixels)
        except conv.InputError as e:
            raise DroppedFrame(f"image_{e.reason}", str(e)) from e
        height, width = image.shape[:2]
        try:
            if cfg.detections_type == "vision_msgs":
                parsed = conv.vision_detections_to_boxes(
                    pair.detections, width, height, cfg.person_class_ids, cfg.min_box_score,
                    cfg.min_box_size_px, cfg.max_persons)
            else:
                parsed = conv.detections_to_boxes(
                    pair.detections, width, height, cfg.min_box_score, cfg.min_box_size_px, cfg.max_persons)
        except (ValueError, TypeError, AttributeError) as e:
            raise DroppedFrame("detections_malformed", f"detections for {pair.stamp_ns} unusable: {e}") from e
        for reason, n in parsed.drops.items():
            if reason != "low_score":
                self.stats.drop(f"box_{reason}", n)
        return FrameInput(image, parsed.boxes_xyxy, parsed.scores, parsed.track_ids)

    def _drop(self, reason: str, message: str) -> None:
        """Count and log (throttled per reason) a dropped input; any thread."""
        self.stats.drop(reason)
        self.log.warning(f"drop:{reason}", f"dropped input ({reason}): {message}")

    def _expire(self) -> None:
        with self._lock:
            for camera in self.cameras:
                camera.pairer.expire(time.monotonic())

    # ------------------------------------------------------------------ outputs (pipeline's head / worker thread)
    def _publish_result(self, frame: FramePoses) -> None:
        if not self.context.ok():
            return  # shutting down: the pipeline may finish a frame after rclpy's context is gone
        try:
            self._publish_outputs(frame)
        except Exception:
            if not self.context.ok():
                return
            raise

    def _publish_outputs(self, frame: FramePoses) -> None:
        cfg = self.cfg
        (index, header), image = frame.token, frame.image_bgr
        pubs = self.cameras[index].pubs
        height, width = image.shape[:2]
        msg = conv.poses_to_msg(frame.poses, header, (width, height))
        pubs["poses"].publish(msg)
        self.stats.tick("poses")
        if frame.suppressed_joints:
            self.stats.drop("shared_joint", frame.suppressed_joints)
        if "markers" in pubs and cfg is not None:
            pubs["markers"].publish(conv.skeletons_to_markers(
                msg, cfg.marker_lifetime_s, cfg.marker_scale_m_per_px, cfg.min_keypoint_score))
        if "image" in pubs and cfg is not None:
            pubs["image"].publish(conv.bgr_to_image_msg(
                conv.draw_skeletons(image, msg, cfg.min_keypoint_score), header))

    def _publish_diagnostics(self) -> None:
        cfg, pipeline = self.cfg, self.pipeline
        if cfg is None:
            return
        with self._lock:
            for camera in self.cameras:
                self.stats.set_drops(camera.topic(""), camera.pairer.drops)
        snapshot = self.stats.snapshot()
        inputs = tuple(camera.topic(name) for camera in self.cameras for name in ("image", "detections"))
        level, message = assess(snapshot, inputs, cfg.input_silence_warn_s)
        if pipeline is not None and not pipeline.healthy:
            level, message = ERROR, f"inference failing: {pipeline.last_error}"
        errors = self.guard.total
        if errors > self._callback_errors_reported:
            new = errors - self._callback_errors_reported
            level, message = ERROR, f"{new} unexpected exception(s) in callbacks since the last report (see the log)"
        self._callback_errors_reported = errors
        self._pubs["diagnostics"].publish(stats_to_diagnostics(
            snapshot, f"{self.get_name()}: pipeline", self.estimator_description, level, message,
            self.get_clock().now().to_msg(),
        ))


def main(argv: list[str] | None = None) -> int:
    """Start the pose node (configure + activate unless ``--no-autostart``); non-zero exit on failure.

    SIGINT/SIGTERM at any moment end it with exit 0 (:mod:`tdmi_ros.shutdown`).
    """
    return run_program(lambda stop: _run(list(sys.argv if argv is None else argv), stop))


def _run(argv: list[str], stop: StopRequest) -> int:
    parser = argparse.ArgumentParser(
        prog="pose_node", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--no-autostart", action="store_true", help="stay unconfigured until a lifecycle manager says so")
    args = parser.parse_args(remove_ros_args(argv)[1:])
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    if stop.requested:
        return 0
    return_large_blocks_to_os()  # freed images leave RSS (the bound in tdmi_ros.memory_bound relies on it)
    with ros_context(argv):
        try:
            node = PoseNode()
        except ParameterException as e:  # e.g. a float parameter written as 0 in the YAML
            rclpy.logging.get_logger(NODE_NAME).fatal(f"invalid parameters: {e}")
            return 1
        try:
            steps = [] if args.no_autostart else [node.trigger_configure, node.trigger_activate]
            for step in steps:
                if stop.requested:  # stopped while starting: nothing failed
                    return 0
                if step() != TransitionCallbackReturn.SUCCESS:
                    return 1  # the reason was logged (fatal) by the failing transition
            spin_until_stopped(node, stop)
        finally:
            node._teardown_active()
            node.destroy_node()
    return 0


if __name__ == "__main__":
    sys.exit(main())
