"""Quality of service of the image topics, one builder for every node that touches them."""
from __future__ import annotations

from typing import Any

IMAGE_QOS_CHOICES = ("sensor_data", "reliable")


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
