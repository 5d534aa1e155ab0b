"""The pose node's parameters: its own fields plus the ``runtime`` section, one frozen, validated schema.

:class:`PoseNodeConfig` holds what only the node needs (topics, QoS, pairing, tracking, markers) and a
``runtime`` field that is exactly :class:`tdmi_core.runtime.config.RuntimeConfig`. ROS declares the
section as dotted parameters (``runtime.backend``, ``runtime.weights``, ...), which a parameter YAML
writes as a nested ``runtime:`` mapping. Every field's ``metadata["help"]`` is the parameter's
description; ``config/pose.yaml`` documents the same names (a test keeps them in step).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from tdmi_core.runtime.config import RuntimeConfig, load_runtime_config
from tdmi_ros.qos import IMAGE_QOS_CHOICES

IMAGE_TRANSPORTS = ("raw", "compressed")
DETECTION_TYPES = ("tdmi", "vision_msgs")
RUNTIME = "runtime"  # the section's name, and the prefix of its ROS parameters


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class PoseNodeConfig:
    """Validated parameters of the pose node (each field's ``metadata["help"]`` says what it means)."""

    cameras: tuple[str, ...] = field(default=("",), metadata=_help(
        "Cameras this node serves, as topic namespaces: camera c has c/<image_topic> and c/<detections_topic> in, "
        "c/<poses_topic> (+ markers, annotated image) out, its own stamp pairing and tracker; each inference step "
        "batches the persons of all cameras into one backend call. [''] = one camera on the plain topics."))
    image_topic: str = field(default="image", metadata=_help(
        "Input image topic (relative; remap it). With image_transport=compressed the node subscribes to "
        "<image_topic>/compressed."))
    image_transport: str = field(default="raw", metadata=_help(
        "'raw' (sensor_msgs/Image) or 'compressed' (sensor_msgs/CompressedImage)."))
    image_qos: str = field(default="sensor_data", metadata=_help(
        "'sensor_data' (best effort, keep last) or 'reliable' for the image subscription."))
    image_qos_depth: int = field(default=5, metadata=_help("History depth of the image subscription."))
    detections_topic: str = field(default="detections", metadata=_help("Person detections topic (relative)."))
    detections_type: str = field(default="tdmi", metadata=_help(
        "'tdmi' (tdmi_msgs/PersonDetectionArray) or 'vision_msgs' (vision_msgs/Detection2DArray, needs vision_msgs "
        "installed)."))
    detections_qos_depth: int = field(default=10, metadata=_help(
        "History depth of the detections subscription (reliable)."))
    person_class_ids: tuple[str, ...] = field(default=("person", "0", "1"), metadata=_help(
        "vision_msgs only: class ids that mean 'person'."))
    poses_topic: str = field(default="poses", metadata=_help(
        "Output tdmi_msgs/Skeleton2DArray topic, stamped with the source image header."))
    markers_topic: str = field(default="poses/markers", metadata=_help(
        "Output visualization_msgs/MarkerArray topic for RViz."))
    publish_markers: bool = field(default=True, metadata=_help("Publish RViz markers."))
    annotated_image_topic: str = field(default="poses/image", metadata=_help("Output annotated sensor_msgs/Image topic."))
    publish_annotated_image: bool = field(default=False, metadata=_help(
        "Publish the image of frame t with the skeletons drawn (costs a copy and a draw)."))
    output_qos_depth: int = field(default=10, metadata=_help("History depth of the output publishers (reliable)."))
    delta: int = field(default=2, metadata=_help(
        "Temporal span: windows of 2*delta+1 frames (must equal the model's delta). With the symmetric window "
        "(t-delta..t+delta) /poses lags the camera by exactly delta frames plus compute; causal (t-2*delta..t) and "
        "single-frame models publish frame t when it arrives."))
    max_persons: int = field(default=8, metadata=_help("Most persons per frame (highest detection scores kept)."))
    min_box_score: float = field(default=0.0, metadata=_help(
        "Detections below this score are ignored. 0 keeps every box: the detector's own threshold decides (the "
        "shipped detector's min_score), so the two never disagree; raise it for a detector that publishes "
        "low-score boxes."))
    min_box_size_px: float = field(default=8.0, metadata=_help(
        "Boxes narrower or lower than this inside the image are dropped."))
    min_keypoint_score: float = field(default=0.2, metadata=_help(
        "Markers and the annotated image leave out keypoints below this score (/poses always carries all 17)."))
    tracker_iou_threshold: float = field(default=0.3, metadata=_help(
        "IoU needed to continue a track (for detections without track ids)."))
    tracker_max_missed_frames: int = field(default=10, metadata=_help(
        "A track survives this many frames without a matching box (lost-track timeout)."))
    pairing_max_wait_s: float = field(default=0.5, metadata=_help(
        "How long an image waits for its detections (and vice versa) before it is dropped."))
    pairing_slop_s: float = field(default=0.0, metadata=_help(
        "Largest stamp difference that still pairs an image with detections (0 = exact match)."))
    pairing_max_pending: int = field(default=30, metadata=_help("Most images (and detection arrays) waiting to be paired."))
    stamp_reset_s: float = field(default=1.0, metadata=_help(
        "An image stamp this far behind the last one means the source restarted: the node flushes and starts a new "
        "sequence. Smaller backward steps and repeats are dropped."))
    queue_depth: int = field(default=2, metadata=_help(
        "Most paired frames waiting for inference; when full the oldest is skipped (compute_behind)."))
    max_frame_age_s: float = field(default=1.0, metadata=_help(
        "Frames older than this when inference reaches them are skipped (0 = never)."))
    flush_after_idle_s: float = field(default=0.0, metadata=_help(
        "With no frame for this long, publish the last delta frames with edge padding (0 = never)."))
    max_image_pixels: int = field(default=4096 * 4096, metadata=_help(
        "Larger images are dropped (image_bad_size) before decoding (compressed: sized from their header); so "
        "are image messages above max_image_pixels x 8 bytes."))
    marker_lifetime_s: float = field(default=0.5, metadata=_help("Lifetime of RViz markers, so people who leave disappear."))
    marker_scale_m_per_px: float = field(default=0.01, metadata=_help(
        "Markers place pixel (u, v) at (u, v, 0) times this, in the image frame."))
    diagnostics_period_s: float = field(default=1.0, metadata=_help("Period of /diagnostics messages."))
    input_silence_warn_s: float = field(default=2.0, metadata=_help(
        "Diagnostics turn WARN when images or detections are silent this long."))
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig, metadata=_help(
        "How the model runs (tdmi_core.runtime.config.RuntimeConfig): the runtime.* parameters."))

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"invalid pose node parameter: {what}")

        need(self.image_transport in IMAGE_TRANSPORTS, f"image_transport must be one of {IMAGE_TRANSPORTS}")
        need(self.image_qos in IMAGE_QOS_CHOICES, f"image_qos must be one of {IMAGE_QOS_CHOICES}")
        need(self.detections_type in DETECTION_TYPES, f"detections_type must be one of {DETECTION_TYPES}")
        for name in ("image_qos_depth", "detections_qos_depth", "output_qos_depth", "max_persons",
                     "pairing_max_pending", "queue_depth", "max_image_pixels"):
            need(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        need(self.delta >= 0, f"delta must be >= 0, got {self.delta}")
        need(len(self.cameras) >= 1 and len(set(self.cameras)) == len(self.cameras),
             f"cameras must be distinct namespaces ([''] for one camera on the plain topics), got {list(self.cameras)}")
        need(all(c == c.strip("/") and (c or len(self.cameras) == 1) for c in self.cameras),
             f"camera namespaces are relative and non-empty when there are several, got {list(self.cameras)}")
        need(self.tracker_max_missed_frames >= 0, "tracker_max_missed_frames must be >= 0")
        for name in ("min_box_score", "min_keypoint_score", "tracker_iou_threshold"):
            need(0.0 <= getattr(self, name) <= 1.0, f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("pairing_max_wait_s", "stamp_reset_s", "marker_lifetime_s", "marker_scale_m_per_px",
                     "diagnostics_period_s", "input_silence_warn_s"):
            need(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("pairing_slop_s", "max_frame_age_s", "flush_after_idle_s", "min_box_size_px"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PoseNodeConfig:
        """Build from parameter values: node fields, and the runtime section either as dotted names
        (``runtime.backend``, as ROS gives them) or as a nested ``runtime`` mapping (as a YAML holds them).

        Unknown names raise ``ValueError``; lists become tuples.
        """
        node: dict[str, Any] = {}
        runtime: dict[str, Any] = {}
        for name, value in values.items():
            if name == RUNTIME and isinstance(value, Mapping):
                runtime.update(value)
            elif name.startswith(f"{RUNTIME}."):
                runtime[name[len(RUNTIME) + 1:]] = value
            else:
                node[name] = tuple(value) if isinstance(value, list) else value
        known = {f.name for f in fields(cls)} - {RUNTIME}
        unknown = set(node) - known
        if unknown:
            raise ValueError(f"unknown pose node parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**node, runtime=load_runtime_config(runtime))


def pose_parameters() -> dict[str, tuple[Any, str]]:
    """Every ROS parameter of the pose node: name -> (default, description), runtime fields as ``runtime.<name>``."""
    out: dict[str, tuple[Any, str]] = {}
    for f in fields(PoseNodeConfig):
        if f.name != RUNTIME:
            out[f.name] = (f.default, f.metadata["help"])
    for f in fields(RuntimeConfig):
        out[f"{RUNTIME}.{f.name}"] = (f.default, f.metadata["help"])
    return out
