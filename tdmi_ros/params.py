"""The pose node's parameters: one table (name, default, description) and a frozen, validated config.

The node declares every entry of :data:`POSE_PARAMS` with its description; ``config/pose.yaml``
documents the same names (a test keeps them in step).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

IMAGE_QOS_CHOICES = ("sensor_data", "reliable")
IMAGE_TRANSPORTS = ("raw", "compressed")
DETECTION_TYPES = ("tdmi", "vision_msgs")
BACKENDS = ("torch", "onnxruntime", "tensorrt")


@dataclass(frozen=True)
class PoseNodeConfig:
    """Validated parameters of the pose node (see :data:`POSE_PARAMS` for each meaning)."""

    image_topic: str = "image"
    image_transport: str = "raw"
    image_qos: str = "sensor_data"
    image_qos_depth: int = 5
    detections_topic: str = "detections"
    detections_type: str = "tdmi"
    detections_qos_depth: int = 10
    person_class_ids: tuple[str, ...] = ("person", "0", "1")
    poses_topic: str = "poses"
    markers_topic: str = "poses/markers"
    publish_markers: bool = True
    annotated_image_topic: str = "poses/image"
    publish_annotated_image: bool = False
    output_qos_depth: int = 10
    model_config: str = "tdmi_lite"
    weights_path: str = "weights/tdmi_lite.pt"
    allow_random_weights: bool = False
    random_seed: int = 0
    backend: str = "torch"
    precision: str = "fp32"
    device: str = "cpu"
    num_threads: int = 2
    delta: int = 2
    estimator_mode: str = "streaming"
    hold_threshold: float = 0.1
    max_batch: int = 16
    cache_dir: str = ""
    max_persons: int = 8
    min_box_score: float = 0.3
    min_box_size_px: float = 8.0
    min_keypoint_score: float = 0.2
    tracker_iou_threshold: float = 0.3
    tracker_max_missed_frames: int = 10
    pairing_max_wait_s: float = 0.5
    pairing_slop_s: float = 0.0
    pairing_max_pending: int = 30
    stamp_reset_s: float = 1.0
    queue_depth: int = 2
    max_frame_age_s: float = 1.0
    flush_after_idle_s: float = 0.0
    max_image_pixels: int = 4096 * 4096
    marker_lifetime_s: float = 0.5
    marker_scale_m_per_px: float = 0.01
    diagnostics_period_s: float = 1.0
    input_silence_warn_s: float = 2.0

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"invalid pose node parameter: {what}")

        need(self.image_transport in IMAGE_TRANSPORTS, f"image_transport must be one of {IMAGE_TRANSPORTS}")
        need(self.image_qos in IMAGE_QOS_CHOICES, f"image_qos must be one of {IMAGE_QOS_CHOICES}")
        need(self.detections_type in DETECTION_TYPES, f"detections_type must be one of {DETECTION_TYPES}")
        need(self.backend in BACKENDS, f"backend must be one of {BACKENDS}")
        need(self.estimator_mode in ("streaming", "exact"), "estimator_mode must be 'streaming' or 'exact'")
        for name in ("image_qos_depth", "detections_qos_depth", "output_qos_depth", "max_persons", "max_batch",
                     "pairing_max_pending", "queue_depth", "num_threads", "max_image_pixels"):
            need(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        need(self.delta >= 0, f"delta must be >= 0, got {self.delta}")
        need(self.tracker_max_missed_frames >= 0, "tracker_max_missed_frames must be >= 0")
        for name in ("min_box_score", "min_keypoint_score", "tracker_iou_threshold"):
            need(0.0 <= getattr(self, name) <= 1.0, f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("pairing_max_wait_s", "stamp_reset_s", "marker_lifetime_s", "marker_scale_m_per_px",
                     "diagnostics_period_s", "input_silence_warn_s"):
            need(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("pairing_slop_s", "max_frame_age_s", "flush_after_idle_s", "min_box_size_px", "hold_threshold"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PoseNodeConfig:
        """Build from a name -> value mapping (unknown names raise, lists become tuples)."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown pose node parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def resolve_path(self, path: str, base: Path | None = None) -> Path:
        """Relative paths are taken from ``base`` (default: the working directory)."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (base or Path.cwd()) / p


POSE_PARAMS: dict[str, str] = {
    "image_topic": "Input image topic (relative; remap it). With image_transport=compressed the node "
    "subscribes to <image_topic>/compressed.",
    "image_transport": "'raw' (sensor_msgs/Image) or 'compressed' (sensor_msgs/CompressedImage).",
    "image_qos": "'sensor_data' (best effort, keep last) or 'reliable' for the image subscription.",
    "image_qos_depth": "History depth of the image subscription.",
    "detections_topic": "Person detections topic (relative).",
    "detections_type": "'tdmi' (tdmi_msgs/PersonDetectionArray) or 'vision_msgs' (vision_msgs/Detection2DArray, "
    "needs vision_msgs installed).",
    "detections_qos_depth": "History depth of the detections subscription (reliable).",
    "person_class_ids": "vision_msgs only: class ids that mean 'person'.",
    "poses_topic": "Output tdmi_msgs/Skeleton2DArray topic, stamped with the source image header.",
    "markers_topic": "Output visualization_msgs/MarkerArray topic for RViz.",
    "publish_markers": "Publish RViz markers.",
    "annotated_image_topic": "Output annotated sensor_msgs/Image topic.",
    "publish_annotated_image": "Publish the image of frame t with the skeletons drawn (costs a copy and a draw).",
    "output_qos_depth": "History depth of the output publishers (reliable).",
    "model_config": "Model config name (e.g. tdmi_lite) or a YAML file; used only with random weights "
    "(a weights file carries its own config).",
    "weights_path": "Trained weights file (relative to the working directory); empty for none.",
    "allow_random_weights": "Testing only: run a randomly initialised model when weights_path is empty or "
    "missing (outputs are meaningless). Off by default; with it off, missing weights stop the node.",
    "random_seed": "Seed of the random initialisation when allow_random_weights is used.",
    "backend": "Inference backend: torch, onnxruntime or tensorrt.",
    "precision": "fp32, bf16 or fp16 (what the backend and device support).",
    "device": "cpu, cuda or cuda:N.",
    "num_threads": "torch intra-op threads on CPU.",
    "delta": "Temporal span: the window is frames t-delta..t+delta and /poses lags the camera by exactly "
    "delta frames plus compute. Must equal the model's delta.",
    "estimator_mode": "'streaming' (held crop box, backbone features reused; real time) or 'exact' "
    "(each window cropped with its key frame's box, as in the paper).",
    "hold_threshold": "Streaming mode: fraction of the crop size a person may move before the held crop box "
    "follows (larger = more feature reuse, less exact crops).",
    "max_batch": "Largest batch of one backend call (bigger batches are split; TensorRT profile maximum).",
    "cache_dir": "Directory for exported ONNX files and TensorRT engines; empty = $TDMI_CACHE_DIR or "
    "~/.cache/tdmi_ros.",
    "max_persons": "Most persons per frame (highest detection scores kept).",
    "min_box_score": "Detections below this score are ignored.",
    "min_box_size_px": "Boxes narrower or lower than this inside the image are dropped.",
    "min_keypoint_score": "Markers and the annotated image leave out keypoints below this score "
    "(/poses always carries all 17).",
    "tracker_iou_threshold": "IoU needed to continue a track (for detections without track ids).",
    "tracker_max_missed_frames": "A track survives this many frames without a matching box (lost-track timeout).",
    "pairing_max_wait_s": "How long an image waits for its detections (and vice versa) before it is dropped.",
    "pairing_slop_s": "Largest stamp difference that still pairs an image with detections (0 = exact match).",
    "pairing_max_pending": "Most images (and detection arrays) waiting to be paired.",
    "stamp_reset_s": "An image stamp this far behind the last one means the source restarted: the node "
    "flushes and starts a new sequence. Smaller backward steps and repeats are dropped.",
    "queue_depth": "Most paired frames waiting for inference; when full the oldest is skipped (compute_behind).",
    "max_frame_age_s": "Frames older than this when inference reaches them are skipped (0 = never).",
    "flush_after_idle_s": "With no frame for this long, publish the last delta frames with edge padding (0 = never).",
    "max_image_pixels": "Larger images are dropped (image_bad_size) before decoding (compressed: sized from "
    "their header); so are image messages above max_image_pixels x 8 bytes.",
    "marker_lifetime_s": "Lifetime of RViz markers, so people who leave disappear.",
    "marker_scale_m_per_px": "Markers place pixel (u, v) at (u, v, 0) times this, in the image frame.",
    "diagnostics_period_s": "Period of /diagnostics messages.",
    "input_silence_warn_s": "Diagnostics turn WARN when images or detections are silent this long.",
}


def image_qos(kind: str, depth: int) -> Any:
    """The QoS of an image topic: ``sensor_data`` (best effort, keep last ``depth``) or ``reliable``.

    One place for what the pose node, the detector and the video publisher use, so their image
    endpoints always match.
    """
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    if kind not in IMAGE_QOS_CHOICES:
        raise ValueError(f"image QoS must be one of {IMAGE_QOS_CHOICES}, got {kind!r}")
    if kind == "sensor_data":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                          reliability=qos_profile_sensor_data.reliability,
                          durability=qos_profile_sensor_data.durability)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE)
