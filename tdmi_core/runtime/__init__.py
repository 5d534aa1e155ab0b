"""Streaming multi-person TDMI inference (no ROS): estimator, backends, engine cache, benchmark.

Public API::

    from tdmi_core.runtime import (StreamingPoseEstimator, TrackedBox, PersonPose, FramePoses,
                                   RuntimeConfig, load_runtime_config, build_estimator)

Backends live in :mod:`tdmi_core.runtime.backends` (``TorchBackend``; ``OnnxRuntimeBackend`` and
``TensorRTBackend`` import their libraries only when constructed).
"""
from tdmi_core.runtime.config import RuntimeConfig, build_backend, build_estimator, load_runtime_config
from tdmi_core.runtime.estimator import MODES, RuntimeStats, StreamingPoseEstimator
from tdmi_core.runtime.types import FramePoses, PersonPose, TrackedBox

__all__ = [
    "MODES",
    "FramePoses",
    "PersonPose",
    "RuntimeConfig",
    "RuntimeStats",
    "StreamingPoseEstimator",
    "TrackedBox",
    "build_backend",
    "build_estimator",
    "load_runtime_config",
]
