"""Distil the teacher-labelled videos into ``tdmi_lite`` on a 2-core CPU, in two cheap phases.

End-to-end training of the lite TDMI (backbone on 2*delta+1 crops per window, backward through
all of them) takes ~40 min per epoch on a shared 2-core CPU, so it cannot converge within an
hour. This module trains the same network in the paper family's own split instead:

1. **pre-crop** (:mod:`tdmi_core.train.distill_cache`): every training window is decoded and
   cropped once (one affine for all its frames) and cached as uint8 ``.npy`` files.
2. **phase 1, single-frame backbone**: HRNet + its ``final_layer`` heatmap head on the key-frame
   crops only (1 crop per sample), Adam, heatmap MSE with visibility weights, flip (with the
   left/right joint swap) + small scale/rotation jitter applied to the uint8 crop.
3. **phase 2, temporal head with the paper's loss**: the phase-1 backbone is frozen (as the
   paper family freezes its pretrained backbone), its stage features for all window crops are
   computed ONCE (fp16, in RAM), and ``temporal_head`` is trained on them with
   :class:`tdmi_core.train.losses.TDMILoss` (L_H + alpha * L_MI; the VSD predictors are in the
   optimiser). No augmentation in phase 2: a flip of features is not a flip of the image.
4. **single-frame baseline of equal size**: the same architecture, the same phase-1 backbone and
   the same phase-2 schedule, but every window is its key frame repeated
   (:func:`key_frame_only`), so all temporal differences are zero and only the key frame counts.
   At inference it must see windows the same way: :func:`as_single_frame_model`.

Usage::

    python -m tdmi_core.train.distill train -c config/train/distill_lite.yaml    # all of the above
    python -m tdmi_core.train.distill precrop -c config/train/distill_lite.yaml  # the cache only

Outputs: the two weight files (``save_weights``, readable with ``weights_only=True``), per-step
loss CSVs and ``summary.json`` in ``output_dir``, and the loss plot.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from tdmi_core.codec import HeatmapCodec
from tdmi_core.config_io import check_known_fields, read_yaml_mapping
from tdmi_core.data.augment import flip_permutation_for
from tdmi_core.data.posetrack import read_split
from tdmi_core.geometry import transform_points
from tdmi_core.models import ModelConfig, build_model, count_parameters, load_model_config
from tdmi_core.models.configs import FEATURE_STRIDE
from tdmi_core.models.tdmi import TDMI
from tdmi_core.models.weights import save_weights
from tdmi_core.model_input import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from tdmi_core.skeleton import KEYPOINT_NAMES
from tdmi_core.train.distill_cache import CropCache, build_crop_cache, cache_meta, load_crop_cache, save_crop_cache
from tdmi_core.train.losses import TDMILoss, heatmap_mse

logger = logging.getLogger(__name__)

SINGLE_FRAME_SUFFIX = "_single_frame"


@dataclass(frozen=True)
class DistillConfig:
    """Settings of the two-phase distillation (``config/train/distill_lite.yaml``); paths relative to the CWD.

    Attributes:
        model: base model config name; ``input_size_hw`` overrides its crop size (heatmaps = input / 4).
        train_annotations / val_annotations / image_root: the teacher-labelled set.
        cache_dir: pre-cropped windows; output_dir: logs, loss CSVs, phase-1 checkpoint, summary.
        sigma: heatmap Gaussian (heatmap pixels); box_padding: key-box enlargement.
        phase1_*: single-frame backbone training (epochs over all key-frame crops, batch, Adam lr).
        flip_prob, scale_range, rotation_deg, rotation_prob: phase-1 augmentation of the uint8 crop.
        warmup_steps: linear lr warm-up of each phase, then cosine decay to ``final_lr_fraction * lr``.
        phase2_key_stride: every n-th key frame gets a window in phase 2 (bounds the feature cache).
        phase2_*: temporal-head training on cached features; alpha: weight of L_MI.
        feature_batch: crops per backbone call when caching features.
        max_train_windows: use only this many windows, evenly spread (smoke tests); None = all.
        student_weights / baseline_weights / loss_plot: outputs.
        metrics_json / model_card / eval_mode: used by ``python -m tdmi_core.tools.distill_metrics``.
    """

    model: str = "tdmi_lite"
    input_size_hw: tuple[int, int] = (128, 96)
    train_annotations: str = "data/teacher/annotations/train"
    val_annotations: str = "data/teacher/annotations/val"
    image_root: str = "data/teacher"
    cache_dir: str = "data/distill_cache"
    output_dir: str = "runs/distill_lite"
    sigma: float = 2.0
    box_padding: float = 1.25
    phase1_epochs: int = 4
    phase1_batch_size: int = 32
    phase1_lr: float = 1e-3
    flip_prob: float = 0.5
    scale_range: tuple[float, float] = (0.8, 1.2)
    rotation_deg: float = 20.0
    rotation_prob: float = 0.4
    warmup_steps: int = 50
    final_lr_fraction: float = 0.02
    phase2_key_stride: int = 2
    phase2_epochs: int = 15
    phase2_batch_size: int = 32
    phase2_lr: float = 1e-3
    alpha: float = 1.0
    feature_batch: int = 64
    max_train_windows: int | None = None
    torch_threads: int = 2
    seed: int = 0
    progress: bool = True
    student_weights: str = "weights/tdmi_lite.pt"
    baseline_weights: str = "weights/tdmi_lite_single_frame.pt"
    loss_plot: str = "docs/images/distill_loss.png"
    metrics_json: str = "docs/distill-metrics.json"
    model_card: str = "weights/MODEL_CARD.md"
    eval_mode: str = "streaming"

    def __post_init__(self) -> None:
        for name in ("input_size_hw", "scale_range"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        for name in ("phase1_epochs", "phase2_epochs", "phase1_batch_size", "phase2_batch_size",
                     "phase2_key_stride", "feature_batch", "torch_threads"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"distill config: {name} must be an integer >= 1, got {getattr(self, name)!r}")
        if min(self.phase1_batch_size, self.phase2_batch_size) < 2:
            raise ValueError("distill config: batch sizes must be >= 2 (BatchNorm in training mode)")
        if not (0 <= self.flip_prob <= 1 and 0 <= self.rotation_prob <= 1):
            raise ValueError(f"distill config: probabilities must be in [0, 1], got {self.flip_prob}, {self.rotation_prob}")
        if not (len(self.scale_range) == 2 and 0 < self.scale_range[0] <= self.scale_range[1]):
            raise ValueError(f"distill config: scale_range must be [low, high] with 0 < low <= high, got {self.scale_range}")
        if min(self.phase1_lr, self.phase2_lr) <= 0 or self.alpha < 0 or self.sigma <= 0:
            raise ValueError("distill config: learning rates and sigma must be > 0 and alpha >= 0")

    def model_config(self) -> ModelConfig:
        """The student's model config: the base variant at ``input_size_hw``, backbone frozen after phase 1."""
        h, w = (int(v) for v in self.input_size_hw)
        return load_model_config(
            self.model, input_size_hw=(h, w), heatmap_size_hw=(h // FEATURE_STRIDE, w // FEATURE_STRIDE),
            freeze_backbone=True,
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in dataclasses.fields(self)}


def load_distill_config(path: str | Path | None = None, **overrides: Any) -> DistillConfig:
    """Read a YAML mapping of :class:`DistillConfig` fields (unknown keys are an error), plus overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        data.update(read_yaml_mapping(path, "distill config"))
    data.update(overrides)
    check_known_fields(data, DistillConfig, "distill config")
    return DistillConfig(**data)


# ------------------------------------------------------------------------------------------------
# windows and inputs


def key_frame_only(window: Tensor, delta: int) -> Tensor:
    """The single-frame baseline's window: ``[B, T, ...]`` -> the key frame ``window[:, delta]`` repeated T times."""
    return window[:, delta : delta + 1].expand_as(window)


class KeyFrameOnlyHead(nn.Module):
    """Wraps a temporal head so it always sees its key frame repeated (the single-frame baseline)."""

    def __init__(self, head: nn.Module, delta: int) -> None:
        super().__init__()
        self.head = head
        self.delta = int(delta)

    def forward(self, window: Tensor, return_aux: bool = False) -> Any:
        return self.head(key_frame_only(window, self.delta), return_aux=return_aux)


class KeyFrameOnlyModel(nn.Module):
    """A TDMI whose temporal head ignores the neighbour frames; same ``backbone`` / ``temporal_head`` API."""

    def __init__(self, model: TDMI) -> None:
        super().__init__()
        self.cfg = model.cfg
        self.backbone = model.backbone
        self.temporal_head = KeyFrameOnlyHead(model.temporal_head, model.cfg.delta)


def as_single_frame_model(model: TDMI) -> KeyFrameOnlyModel:
    """How ``tdmi_lite_single_frame.pt`` must be run: windows become the key frame repeated (as in training)."""
    return KeyFrameOnlyModel(model)


def crops_to_tensor(crops_bgr: np.ndarray) -> Tensor:
    """``[B, H, W, 3]`` uint8 BGR -> ``[B, 3, H, W]`` float32 RGB, ImageNet-normalised (as the runtime)."""
    x = torch.from_numpy(np.ascontiguousarray(crops_bgr)).permute(0, 3, 1, 2).flip(1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN_RGB).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD_RGB).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def augment_key_crop(
    crop: np.ndarray,
    keypoints: np.ndarray,
    visible: np.ndarray,
    rng: np.random.Generator,
    cfg: DistillConfig,
    flip_perm: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phase-1 augmentation of one key-frame crop, keypoints moved with it.

    Args:
        crop: ``[H, W, 3]`` uint8; keypoints: ``[K, 2]`` crop pixels; visible: ``[K]`` 0/1.
        flip_perm: ``[K]`` joint permutation of a horizontal flip (left/right swap).

    Returns:
        ``(crop, keypoints, visible)``; joints pushed outside the crop lose their visibility.
    """
    h, w = crop.shape[:2]
    kp = keypoints.astype(np.float64)
    vis = visible.astype(np.float32)
    if rng.random() < cfg.flip_prob:
        # Array index i -> w-1-i, so x -> (w - 1) - x; then left/right joints trade places.
        crop = crop[:, ::-1]
        kp = np.stack([(w - 1) - kp[:, 0], kp[:, 1]], axis=1)[flip_perm]
        vis = vis[flip_perm]
    scale = float(rng.uniform(*cfg.scale_range))
    rot = float(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)) if rng.random() < cfg.rotation_prob else 0.0
    if scale != 1.0 or rot != 0.0:
        matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), rot, scale)
        crop = cv2.warpAffine(np.ascontiguousarray(crop), matrix, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        kp = transform_points(kp, matrix)
        inside = (kp[:, 0] >= 0) & (kp[:, 1] >= 0) & (kp[:, 0] <= w) & (kp[:, 1] <= h)
        vis = vis * inside
    return np.ascontiguousarray(crop), kp, vis


def _lr_lambda(warmup: int, total: int, final_fraction: float):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled index batches; the ragged tail is dropped (a batch of 1 breaks BatchNorm)."""
    perm = rng.permutation(n)
    return [np.sort(perm[i : i + batch_size]) for i in range(0, n - batch_size + 1, batch_size)]


# ------------------------------------------------------------------------------------------------
# phase 1


def train_backbone(
    model: TDMI, cache: CropCache, cfg: DistillConfig, rows: list[dict[str, Any]], indices: np.ndarray | None = None
) -> None:
    """Phase 1: train ``model.backbone`` + its ``final_layer`` on augmented key-frame crops (in place).

    Appends ``{"phase": "phase1", "step", "epoch", "loss", "lr", "time_s"}`` rows to ``rows``.
    """
    from tqdm import tqdm

    mcfg = model.cfg
    backbone = model.backbone
    backbone.requires_grad_(True)  # also final_layer, which TDMI leaves frozen
    backbone.train()
    backbone.to(memory_format=torch.channels_last)
    codec = HeatmapCodec(mcfg.input_size_hw, mcfg.heatmap_size_hw, cfg.sigma)
    flip_perm = flip_permutation_for(tuple(cache.meta.get("keypoint_names", KEYPOINT_NAMES)))
    key = mcfg.delta
    indices = np.arange(len(cache)) if indices is None else np.asarray(indices)
    rng = np.random.default_rng([cfg.seed, 1])
    steps_per_epoch = len(indices) // cfg.phase1_batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"phase 1 needs at least {cfg.phase1_batch_size} samples, got {len(indices)}")
    total = steps_per_epoch * cfg.phase1_epochs
    opt = torch.optim.Adam(backbone.parameters(), lr=cfg.phase1_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(min(cfg.warmup_steps, total // 4 + 1), total,
                                                              cfg.final_lr_fraction))
    start = time.monotonic()
    bar = tqdm(total=total, desc="phase 1 backbone", unit="step", disable=not cfg.progress, mininterval=10)
    step = 0
    for epoch in range(cfg.phase1_epochs):
        for batch in _batches(len(indices), cfg.phase1_batch_size, rng):
            crops, targets, weights = [], [], []
            for i in indices[batch]:
                crop, kp, vis = augment_key_crop(cache.crops[i, key], cache.keypoints[i], cache.visible[i], rng, cfg,
                                                 flip_perm)
                hm, w = codec.encode(kp, vis)
                crops.append(crop)
                targets.append(hm)
                weights.append(w)
            x = crops_to_tensor(np.stack(crops))
            pred = backbone.forward_heatmaps(x)
            loss = heatmap_mse(pred, torch.from_numpy(np.stack(targets)), torch.from_numpy(np.stack(weights)))
            value = loss.item()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            rows.append({"phase": "phase1", "step": step, "epoch": epoch, "loss": value,
                         "lr": opt.param_groups[0]["lr"], "time_s": round(time.monotonic() - start, 2)})
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{value:.2e}")
            if step % 25 == 0 or step == total:
                logger.info("phase 1 step %d/%d epoch %d loss %.3e (%.1f s)", step, total, epoch, value,
                            time.monotonic() - start)
    bar.close()
    backbone.final_layer.requires_grad_(False)
    backbone.requires_grad_(not model.cfg.freeze_backbone)
    backbone.eval()


# ------------------------------------------------------------------------------------------------
# phase 2


@torch.no_grad()
def extract_window_features(
    backbone: nn.Module, crops: np.ndarray, indices: np.ndarray, batch_size: int = 64, progress: bool = True
) -> Tensor:
    """Frozen-backbone stage features of every frame of the chosen windows.

    Args:
        backbone: the (phase-1) HRNet; run in eval mode.
        crops: ``[N, T, H, W, 3]`` uint8 BGR windows (may be memory-mapped).
        indices: ``[M]`` windows to use.

    Returns:
        ``[M, T, 4, C, h, w]`` float16 features.
    """
    from tqdm import tqdm

    backbone.eval()
    backbone.to(memory_format=torch.channels_last)
    t = crops.shape[1]
    per_call = max(1, batch_size // t)
    out: Tensor | None = None
    for start in tqdm(range(0, len(indices), per_call), desc="phase 2 features", unit="batch",
                      disable=not progress, mininterval=10):
        idx = np.asarray(indices[start : start + per_call])
        chunk = np.asarray(crops[idx])
        feats = backbone(crops_to_tensor(chunk.reshape(-1, *chunk.shape[2:]))).unflatten(0, (len(idx), t))
        if out is None:
            out = torch.empty((len(indices), *feats.shape[1:]), dtype=torch.float16)
        out[start : start + len(idx)] = feats.to(torch.float16)
    assert out is not None
    return out


def train_temporal_head(
    model: TDMI,
    features: Tensor,
    heatmaps: Tensor,
    weights: Tensor,
    cfg: DistillConfig,
    rows: list[dict[str, Any]],
    single_frame: bool = False,
) -> None:
    """Phase 2: train ``model.temporal_head`` (and the loss's VSD predictors) with TDMILoss on cached features.

    Args:
        features: ``[N, T, 4, C, h, w]`` float16 frozen-backbone features.
        heatmaps: ``[N, K, h, w]`` targets; weights: ``[N, K]``.
        single_frame: train the baseline (every window = its key frame repeated).

    Appends per-step rows with total / heatmap / mi losses (phase ``phase2`` or ``phase2_single_frame``).
    """
    from tqdm import tqdm

    phase = "phase2_single_frame" if single_frame else "phase2"
    head = model.temporal_head
    head.requires_grad_(True)
    head.train()
    loss_fn = TDMILoss(model.cfg, alpha=cfg.alpha)
    # NHWC weights make oneDNN pick its fast CPU convolutions (~2x here, 10x for the VSD predictors).
    head.to(memory_format=torch.channels_last)
    loss_fn.to(memory_format=torch.channels_last)
    params = list(head.parameters()) + list(loss_fn.parameters())
    opt = torch.optim.Adam(params, lr=cfg.phase2_lr)
    n = features.shape[0]
    steps_per_epoch = n // cfg.phase2_batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"phase 2 needs at least {cfg.phase2_batch_size} windows, got {n}")
    total = steps_per_epoch * cfg.phase2_epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(min(cfg.warmup_steps, total // 4 + 1), total,
                                                              cfg.final_lr_fraction))
    rng = np.random.default_rng([cfg.seed, 2])  # same batches for the student and the baseline
    delta = model.cfg.delta
    start = time.monotonic()
    bar = tqdm(total=total, desc=f"{phase} head", unit="step", disable=not cfg.progress, mininterval=10)
    step = 0
    for epoch in range(cfg.phase2_epochs):
        for batch in _batches(n, cfg.phase2_batch_size, rng):
            idx = torch.from_numpy(batch)
            window = features[idx].float()
            if single_frame:
                window = key_frame_only(window, delta)
            aux = head(window, return_aux=True)
            losses = loss_fn(aux, heatmaps[idx].float(), weights[idx])
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            opt.step()
            sched.step()
            step += 1
            values = {k: losses[k].item() for k in ("total", "heatmap", "mi")}
            rows.append({"phase": phase, "step": step, "epoch": epoch, "loss": values["total"],
                         "heatmap": values["heatmap"], "mi": values["mi"],
                         "lr": opt.param_groups[0]["lr"], "time_s": round(time.monotonic() - start, 2)})
            bar.update(1)
            bar.set_postfix(epoch=epoch, heat=f"{values['heatmap']:.2e}")
            if step % 50 == 0 or step == total:
                logger.info("%s step %d/%d epoch %d total %.3e heatmap %.3e mi %.3e (%.1f s)", phase, step, total,
                            epoch, values["total"], values["heatmap"], values["mi"],
                            time.monotonic() - start)
    bar.close()
    head.eval()


# ------------------------------------------------------------------------------------------------
# outputs


def write_rows(rows: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """Loss rows to CSV (union of keys as columns)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def plot_losses(rows: Sequence[Mapping[str, Any]], out_png: str | Path) -> Path:
    """Phase-1 loss and phase-2 losses (student vs single-frame baseline) to one PNG (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    def series(phase: str, key: str) -> tuple[list[int], list[float]]:
        sel = [r for r in rows if r["phase"] == phase and key in r]
        return [r["step"] for r in sel], [float(r[key]) for r in sel]

    def smooth(y: list[float], k: int = 20) -> np.ndarray:
        if len(y) < k:
            return np.asarray(y)
        return np.convolve(y, np.ones(k) / k, mode="valid")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    x, y = series("phase1", "loss")
    axes[0].plot(x, y, linewidth=0.5, alpha=0.4, label="per step")
    axes[0].plot(x[len(x) - len(smooth(y)):], smooth(y), label="mean of 20")
    axes[0].set_title("phase 1: single-frame backbone, heatmap MSE")
    for ax, key, title in ((axes[1], "heatmap", "phase 2: L_H (heatmap MSE)"), (axes[2], "mi", "phase 2: L_MI (VSD)")):
        for phase, label in (("phase2", "TDMI student (5 frames)"), ("phase2_single_frame", "single-frame baseline")):
            x, y = series(phase, key)
            ax.plot(x[len(x) - len(smooth(y)):], smooth(y), label=label)
        ax.set_title(title + ", mean of 20 steps")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend()
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def baseline_config(student: ModelConfig) -> ModelConfig:
    """The single-frame baseline's config: the student's, renamed (the architecture is identical)."""
    return dataclasses.replace(
        student, name=student.name + SINGLE_FRAME_SUFFIX,
        description="Single-frame baseline of tdmi_lite: same network, trained and run with every window = its key "
        "frame repeated (tdmi_core.train.distill.as_single_frame_model).",
    )


# ------------------------------------------------------------------------------------------------
# the pipeline


def prepare_cache(cfg: DistillConfig, mcfg: ModelConfig) -> CropCache:
    """Load the crop cache if it matches the settings, else build and save it."""
    videos = read_split(cfg.train_annotations, cfg.image_root)
    meta = cache_meta(videos, mcfg.input_size_hw, mcfg.heatmap_size_hw, cfg.sigma, mcfg.delta, cfg.box_padding, 1)
    meta["keypoint_names"] = list(videos[0].keypoint_names)
    try:
        cache = load_crop_cache(cfg.cache_dir, expected_meta=meta)
        logger.info("using crop cache %s (%d windows)", cfg.cache_dir, len(cache))
        return cache
    except (FileNotFoundError, ValueError) as e:
        logger.info("building crop cache: %s", e)
    start = time.monotonic()
    cache = build_crop_cache(videos, cfg.image_root, mcfg.input_size_hw, mcfg.heatmap_size_hw, cfg.sigma, mcfg.delta,
                             cfg.box_padding, key_frame_stride=1, progress=cfg.progress)
    cache = dataclasses.replace(cache, meta=meta)
    save_crop_cache(cache, cfg.cache_dir)
    logger.info("pre-cropped %d windows in %.1f s -> %s", len(cache), time.monotonic() - start, cfg.cache_dir)
    return cache


def run_training(cfg: DistillConfig, reuse_phase1: bool = False) -> dict[str, Any]:
    """Pre-crop, phase 1, phase 2 for the student and the baseline; save weights, CSVs, plot, summary."""
    torch.set_num_threads(cfg.torch_threads)
    cv2.setNumThreads(1)
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "distill_config.json").write_text(json.dumps(cfg.to_dict(), indent=1), encoding="utf-8")
    mcfg = cfg.model_config()
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    cache = prepare_cache(cfg, mcfg)
    timings["precrop_s"] = time.monotonic() - t0

    selected = np.arange(len(cache))
    if cfg.max_train_windows is not None and cfg.max_train_windows < len(cache):
        selected = np.unique(np.linspace(0, len(cache) - 1, cfg.max_train_windows).round().astype(np.int64))
    torch.manual_seed(cfg.seed)
    student = build_model(mcfg)
    rows: list[dict[str, Any]] = []
    phase1_ckpt = out_dir / "phase1_backbone.pt"
    t1 = time.monotonic()
    if reuse_phase1 and phase1_ckpt.is_file():
        student.backbone.load_state_dict(torch.load(phase1_ckpt, map_location="cpu", weights_only=True))
        phase1_csv = out_dir / "losses_phase1.csv"
        if phase1_csv.is_file():
            with phase1_csv.open(encoding="utf-8") as fh:
                rows += [{k: (v if k == "phase" else float(v)) for k, v in r.items()} for r in csv.DictReader(fh)]
        logger.info("reusing phase-1 backbone %s", phase1_ckpt)
    else:
        train_backbone(student, cache, cfg, rows, indices=selected)
        torch.save(student.backbone.state_dict(), phase1_ckpt)
        write_rows(rows, out_dir / "losses_phase1.csv")
    student.backbone.requires_grad_(False)
    student.backbone.eval()
    timings["phase1_s"] = time.monotonic() - t1

    t2 = time.monotonic()
    indices = selected[cache.frame_index[selected] % cfg.phase2_key_stride == 0]
    features = extract_window_features(student.backbone, cache.crops, indices, cfg.feature_batch, cfg.progress)
    heatmaps = torch.from_numpy(np.asarray(cache.heatmaps[indices]))
    weights = torch.from_numpy(np.asarray(cache.weights[indices]))
    timings["features_s"] = time.monotonic() - t2
    logger.info("phase 2 features: %d windows, %s, %.2f GB fp16, %.1f s", len(indices), tuple(features.shape),
                features.numel() * 2 / 1e9, timings["features_s"])

    # The baseline: same backbone, same head initialisation (same seed), same batches.
    baseline = build_model(baseline_config(mcfg))
    baseline.backbone.load_state_dict(student.backbone.state_dict())
    torch.manual_seed(cfg.seed + 1)
    student.temporal_head.load_state_dict(build_model(mcfg).temporal_head.state_dict())
    baseline.temporal_head.load_state_dict(student.temporal_head.state_dict())

    results: dict[str, Any] = {}
    for name, model, single, path in (("student", student, False, cfg.student_weights),
                                      ("single_frame", baseline, True, cfg.baseline_weights)):
        t3 = time.monotonic()
        head_rows: list[dict[str, Any]] = []
        torch.manual_seed(cfg.seed + 2)
        train_temporal_head(model, features, heatmaps, weights, cfg, head_rows, single_frame=single)
        rows += head_rows
        write_rows(head_rows, out_dir / f"losses_{head_rows[0]['phase']}.csv")
        model.eval()
        save_weights(model, path)
        timings[f"phase2_{name}_s"] = time.monotonic() - t3
        results[name] = {"weights": path, "size_mb": round(Path(path).stat().st_size / 1e6, 2),
                         "parameters": count_parameters(model), "final_heatmap_loss_mean20":
                         float(np.mean([r["heatmap"] for r in head_rows[-20:]]))}
        logger.info("saved %s (%.2f MB) after %.1f s", path, results[name]["size_mb"], timings[f"phase2_{name}_s"])
    plot_losses(rows, cfg.loss_plot)
    timings["total_s"] = time.monotonic() - t0
    summary = {
        "model_config": mcfg.to_dict(),
        "train_windows_phase1": int(len(selected)),
        "train_windows_phase2": int(len(indices)),
        "phase1_steps": sum(r["phase"] == "phase1" for r in rows),
        "phase2_steps": sum(r["phase"] == "phase2" for r in rows),
        "phase1_final_loss_mean20": float(np.mean([r["loss"] for r in rows if r["phase"] == "phase1"][-20:])),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "models": results,
        "torch_threads": cfg.torch_threads,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    logger.info("done in %.1f min: %s", timings["total_s"] / 60, json.dumps(summary["timings_s"]))
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tdmi_core.train.distill", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Two-phase CPU distillation of tdmi_lite (and its single-frame baseline) on teacher-labelled videos.",
    )
    parser.add_argument("command", choices=("train", "precrop"), help="train: everything; precrop: the crop cache only")
    parser.add_argument("-c", "--config", default="config/train/distill_lite.yaml", help="DistillConfig YAML")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config fields (YAML values), e.g. --set phase1_epochs=1")
    parser.add_argument("--reuse-phase1", action="store_true",
                        help="load output_dir/phase1_backbone.pt instead of training phase 1 again")
    parser.add_argument("--log-level", default="INFO")
    return parser


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["a=1", "b=[2, 3]"]`` -> ``{"a": 1, "b": [2, 3]}`` (values parsed as YAML)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must be KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = load_distill_config(args.config, **parse_overrides(args.set))
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr),
                                       logging.FileHandler(Path(cfg.output_dir) / f"{args.command}.log")]
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)
    if args.command == "precrop":
        torch.set_num_threads(cfg.torch_threads)
        prepare_cache(cfg, cfg.model_config())
    else:
        run_training(cfg, reuse_phase1=args.reuse_phase1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
