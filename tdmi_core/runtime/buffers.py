"""Bounded per-stream state: recent frames and per-track crop boxes + backbone features."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from torch import Tensor

from tdmi_core.runtime.crops import CropBox
from tdmi_core.runtime.types import TrackedBox

__all__ = ["FrameFeatures", "FrameRecord", "StreamState", "TrackState"]


class FrameFeatures(NamedTuple):
    """What the temporal head needs of one person-frame (``TemporalHead.split_inputs`` of one frame).

    Attributes:
        motion: ``[S, C, h', w']`` stage features pooled for the TDE (pooled once per frame).
        visual: ``[C, h, w]`` final-stage features (read by the visual feature of the key frame / TDMI-ST).
    """

    motion: Tensor
    visual: Tensor


@dataclass
class FrameRecord:
    """One pushed frame: the image (kept while a window may still crop it), its token and tracks."""

    image: np.ndarray
    token: Any
    tracks: dict[int, TrackedBox]


@dataclass
class TrackState:
    """What the runtime remembers about one track.

    Attributes:
        track_id: the id.
        held: crop box currently held (streaming mode) or the latest key box (exact mode).
        key_crops: crop box per key frame not yet emitted (frame index → box).
        features: :class:`FrameFeatures` per (frame index, crop key).
        canvases: aligned mode: the crop box each cached frame's features were computed with.
        last_seen: last frame index the track was pushed with.
    """

    track_id: int
    held: CropBox | None = None
    key_crops: dict[int, CropBox] = field(default_factory=dict)
    features: dict[tuple[int, tuple], FrameFeatures] = field(default_factory=dict)
    canvases: dict[int, CropBox] = field(default_factory=dict)
    last_seen: int = -1

    def evict(self, min_feature_frame: int, min_key_frame: int) -> None:
        """Drop emitted key frames and features no pending window can use."""
        self.key_crops = {f: c for f, c in self.key_crops.items() if f >= min_key_frame}
        self.canvases = {f: c for f, c in self.canvases.items() if f >= min_feature_frame}
        # exact / streaming: features cropped with a pending key frame's box or the held one (the next key's)
        live = {c.key for c in self.key_crops.values()} | ({self.held.key} if self.held is not None else set())
        self.features = {
            (f, key): v for (f, key), v in self.features.items()
            if f >= min_feature_frame and (key in live or (f in self.canvases and self.canvases[f].key == key))
        }


@dataclass
class StreamState:
    """One camera's stream: recent frames, its tracks and how far it has been emitted.

    Attributes:
        frames: pushed frames still needed by a pending window (frame index → record).
        tracks: track states (track id → state).
        next_frame: index the next pushed frame gets.
        next_emit: the next key frame to emit.
    """

    frames: dict[int, FrameRecord] = field(default_factory=dict)
    tracks: dict[int, TrackState] = field(default_factory=dict)
    next_frame: int = 0
    next_emit: int = 0

