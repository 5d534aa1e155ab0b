"""PoseTrack / teacher-labelled video data: readers, windows, augmentation, torch datasets.

Readers (json -> records), augmentation (drawn once per window) and packing (the torch dataset in
``tdmi_core.data.dataset``, not imported here so the readers stay torch-free) are separate modules.
"""
from tdmi_core.data.augment import AugmentConfig, WindowTransform, flip_permutation_for, make_window_transform
from tdmi_core.data.detections import FrameDetections, read_detections
from tdmi_core.data.posetrack import (
    AnnotationError,
    FrameRecord,
    PersonAnnotation,
    VideoRecord,
    read_posetrack17,
    read_posetrack18,
    read_split,
    read_video,
)

__all__ = [
    "AugmentConfig", "WindowTransform", "flip_permutation_for", "make_window_transform",
    "FrameDetections", "read_detections",
    "AnnotationError", "FrameRecord", "PersonAnnotation", "VideoRecord",
    "read_posetrack17", "read_posetrack18", "read_split", "read_video",
]
