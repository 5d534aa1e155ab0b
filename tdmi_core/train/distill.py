"""Distil the teacher-labelled videos into the default model on a 2-core CPU, in two phases.

The default model (``tdmi_movenet``) is TDMI on MoveNet Lightning's MobileNetV2-FPN trunk, whose
pretrained weights come from ``weights/movenet_lightning.onnx``
(:mod:`tdmi_core.models.movenet_import`). Training:

1. **pre-crop** (:mod:`tdmi_core.train.distill_cache`): every training window is decoded and
   cropped once (one affine for all its frames, with extra context for augmentation).
2. **phase 1, single frame**: the backbone and MoveNet's keypoint head are fine-tuned on the
   key-frame crops (trunk at a lower learning rate), heatmap MSE with visibility weights.
3. **phase 2, temporal head**: the phase-1 backbone is frozen; ``temporal_head`` (TDE + RDM + head,
   its final layer initialised from the phase-1 keypoint head, its fusion a zero-initialised
   residual, so it starts as the phase-1 model) is trained with :class:`TDMILoss` (L_H + alpha L_MI)
   and, with ``velocity_weight`` > 0, on pairs of windows whose key frames are t and t+1 (they share
   all but one frame) with :func:`~tdmi_core.train.losses.window_pair_velocity_loss`: the two
   predictions must move as the teacher's joints move, which rewards errors that stay put from frame
   to frame (per-frame heatmap losses do not; independent errors are jitter).
4. **single-frame twin**: the same phase 2, same initialisation, same batches, but every window is
   its key frame repeated (:func:`key_frame_only`), so all temporal differences are zero.

Both phases draw one augmentation per window (flip with the left/right swap, scale, rotation,
shift) applied to all its frames; phase 2 also degrades the key frame alone with
``degrade_prob`` (an occluder or motion blur, :func:`tdmi_core.data.augment.degrade`), the case
where reading the neighbours should matter most. The twin sees the same degraded key frame.

Every phase writes a resumable checkpoint every ``checkpoint_every`` steps: rerunning the same
command continues where it stopped. Each step's batch is drawn from ``(seed, phase, step)``, so a
resumed run sees the batches an uninterrupted run would.

Usage::

    python -m tdmi_core.train.distill train -c config/train/distill_movenet.yaml
    python -m tdmi_core.train.distill train -c config/train/distill_movenet_causal.yaml
    python -m tdmi_core.train.distill precrop -c config/train/distill_movenet.yaml
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
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from tdmi_core.codec import HeatmapCodec
from tdmi_core.config_io import check_known_fields, read_yaml_mapping
from tdmi_core.data.augment import degrade, flip_permutation_for
from tdmi_core.data.posetrack import read_split
from tdmi_core.geometry import transform_points
from tdmi_core.model_input import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from tdmi_core.models import ModelConfig, build_model, count_parameters, load_model_config
from tdmi_core.models.tdmi import TDMI
from tdmi_core.models.weights import save_weights
from tdmi_core.skeleton import KEYPOINT_NAMES
from tdmi_core.train.distill_cache import CropCache, build_crop_cache, cache_meta, load_crop_cache
from tdmi_core.train.losses import MI_FORMS, TDMILoss, heatmap_mse, window_pair_velocity_loss

logger = logging.getLogger(__name__)

SINGLE_FRAME_SUFFIX = "_single_frame"


@dataclass(frozen=True)
class DistillConfig:
    """Settings of the two-phase distillation (``config/train/distill_movenet.yaml``); paths relative to the CWD.

    Attributes:
        model: base model config name; ``window`` overrides its window ("symmetric" | "causal").
        backbone_onnx: MoveNet Lightning ONNX whose trunk initialises a movenet backbone.
        train_annotations / image_root: the teacher-labelled set (docs/teacher-dataset.md).
        cache_dir: pre-cropped windows; output_dir: logs, loss CSVs, checkpoints, summary.
        box_padding: key-box enlargement; context: extra surroundings kept in the cache for augmentation.
        key_frame_stride: every n-th labelled frame of each video is a key frame.
        flip_prob, scale_range, rotation_deg, rotation_prob, shift_fraction: one draw per window.
        degrade_prob: phase 2 only: probability that the key frame alone is occluded or blurred.
        phase1_*: single-frame fine-tuning (steps, batch, Adam lr of the head; the trunk gets
            ``trunk_lr_scale`` x that).
        phase2_*: temporal-head training; alpha: weight of L_MI; mi_form: "paper" | "vsd".
        velocity_weight: phase 2: weight of :func:`~tdmi_core.train.losses.window_pair_velocity_loss`
            (0: off). When > 0 each batch holds ``phase2_batch_size / 2`` pairs of windows with
            consecutive key frames, and the crop cache keeps each window's next frame.
        phase1_from: reuse another run's phase-1 backbone file (the causal model starts from the
            symmetric run's, so both share phase 1); None trains phase 1 here.
        warmup_steps / final_lr_fraction: linear warm-up, then cosine decay to this fraction.
        checkpoint_every: steps between resumable checkpoints.
        student_weights / baseline_weights: outputs (baseline None: no single-frame twin).
    """

    model: str = "tdmi_movenet"
    window: str = "symmetric"
    backbone_onnx: str = "weights/movenet_lightning.onnx"
    train_annotations: str = "data/teacher/annotations/train"
    image_root: str = "data/teacher"
    cache_dir: str = "data/distill_cache/symmetric"
    output_dir: str = "runs/tdmi_movenet"
    box_padding: float = 1.25
    context: float = 1.25
    key_frame_stride: int = 2
    flip_prob: float = 0.5
    scale_range: tuple[float, float] = (0.75, 1.25)
    rotation_deg: float = 30.0
    rotation_prob: float = 0.5
    shift_fraction: float = 0.06
    degrade_prob: float = 0.4
    phase1_steps: int = 1200
    phase1_batch_size: int = 32
    phase1_lr: float = 1e-3
    trunk_lr_scale: float = 0.1
    phase1_from: str | None = None
    phase2_steps: int = 1000
    phase2_batch_size: int = 16
    phase2_lr: float = 1e-3
    alpha: float = 1.0
    mi_form: str = "paper"
    velocity_weight: float = 0.0
    warmup_steps: int = 50
    final_lr_fraction: float = 0.02
    checkpoint_every: int = 100
    max_train_windows: int | None = None
    torch_threads: int = 2
    seed: int = 0
    progress: bool = True
    student_weights: str = "weights/tdmi_movenet.pt"
    baseline_weights: str | None = "weights/tdmi_movenet_single_frame.pt"
    loss_plot: str = "docs/images/distill_loss.png"

    def __post_init__(self) -> None:
        for name in ("scale_range",):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        for name in ("phase1_steps", "phase2_steps", "key_frame_stride", "checkpoint_every", "torch_threads"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                raise ValueError(f"distill config: {name} must be an integer >= 0, got {getattr(self, name)!r}")
        if min(self.phase1_batch_size, self.phase2_batch_size) < 2:
            raise ValueError("distill config: batch sizes must be >= 2 (BatchNorm in training mode)")
        for name in ("flip_prob", "rotation_prob", "degrade_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"distill config: {name} must be in [0, 1], got {getattr(self, name)}")
        if not (len(self.scale_range) == 2 and 0 < self.scale_range[0] <= self.scale_range[1]):
            raise ValueError(f"distill config: scale_range must be [low, high] with 0 < low <= high, got {self.scale_range}")
        if min(self.phase1_lr, self.phase2_lr) <= 0 or self.alpha < 0 or self.context < 1:
            raise ValueError("distill config: learning rates must be > 0, alpha >= 0 and context >= 1")
        if self.velocity_weight < 0 or (self.velocity_weight > 0 and self.phase2_batch_size % 2):
            raise ValueError("distill config: velocity_weight must be >= 0, and with it phase2_batch_size even "
                             f"(pairs of windows), got {self.velocity_weight} and {self.phase2_batch_size}")
        if self.mi_form not in MI_FORMS:
            raise ValueError(f"distill config: mi_form must be one of {MI_FORMS}, got {self.mi_form!r}")

    def model_config(self) -> ModelConfig:
        """The student's model config (the named base with this run's window)."""
        return load_model_config(self.model, window=self.window)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def load_distill_config(path: str | Path | None = None, **overrides: Any) -> DistillConfig:
    """Read a :class:`DistillConfig` YAML (unknown keys rejected), then apply ``overrides``."""
    data = dict(read_yaml_mapping(path, "distill config")) if path is not None else {}
    data.update(overrides)
    check_known_fields(data, DistillConfig, "distill config", str(path))
    return DistillConfig(**data)


# ------------------------------------------------------------------------------------------------
# windows and inputs


def key_frame_only(window: Tensor, key_index: int) -> Tensor:
    """The single-frame twin's window: ``[B, T, ...]`` -> the key frame ``window[:, key_index]`` repeated T times."""
    return window[:, key_index : key_index + 1].expand_as(window)


class KeyFrameOnlyHead(nn.Module):
    """Wraps a temporal head so it always sees its key frame repeated (the single-frame twin)."""

    def __init__(self, head: nn.Module, key_index: int) -> None:
        super().__init__()
        self.head = head
        self.key_index = int(key_index)

    def forward(self, window: Tensor, return_aux: bool = False) -> Any:
        return self.head(key_frame_only(window, self.key_index), return_aux=return_aux)


class KeyFrameOnlyModel(nn.Module):
    """A TDMI whose temporal head ignores the neighbour frames; same ``backbone`` / ``temporal_head`` API."""

    def __init__(self, model: TDMI) -> None:
        super().__init__()
        self.cfg = model.cfg
        self.backbone = model.backbone
        self.temporal_head = KeyFrameOnlyHead(model.temporal_head, model.cfg.key_index)


def as_single_frame_model(model: TDMI) -> KeyFrameOnlyModel:
    """How a single-frame twin must be run: windows become the key frame repeated (as in training)."""
    return KeyFrameOnlyModel(model)


def crops_to_tensor(crops_bgr: np.ndarray) -> Tensor:
    """``[B, H, W, 3]`` uint8 BGR -> ``[B, 3, H, W]`` float32 RGB, ImageNet-normalised (as the runtime)."""
    x = torch.from_numpy(np.ascontiguousarray(crops_bgr)).permute(0, 3, 1, 2).flip(1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN_RGB).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD_RGB).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


class WindowSampler:
    """Augmented training windows from a :class:`CropCache` (one random draw per window).

    ``sample(indices, rng, frames, degrade_prob)`` returns ``(crops[B, T', H, W, 3] uint8,
    keypoints[B, K, 2] crop px, visible[B, K])`` where ``frames`` picks "all" (T' = T) or "key" (T' = 1).
    """

    def __init__(self, cache: CropCache, cfg: DistillConfig, input_size_hw: tuple[int, int]) -> None:
        self.cache = cache
        self.cfg = cfg
        self.out_hw = tuple(int(v) for v in input_size_hw)
        self.key_index = int(cache.meta["key_index"])
        self.flip_perm = flip_permutation_for(tuple(cache.meta.get("keypoint_names", KEYPOINT_NAMES)))

    def _affine(self, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
        """Cache crop -> model crop: flip, rotation and scale about the centre, then a shift."""
        cfg = self.cfg
        c_h, c_w = self.cache.crops.shape[2:4]
        o_h, o_w = self.out_hw
        flip = bool(rng.random() < cfg.flip_prob)
        scale = float(rng.uniform(*cfg.scale_range))  # > 1 zooms in
        rot = float(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)) if rng.random() < cfg.rotation_prob else 0.0
        shift = rng.uniform(-cfg.shift_fraction, cfg.shift_fraction, size=2) * (o_w, o_h)
        m = cv2.getRotationMatrix2D((c_w / 2.0, c_h / 2.0), rot, scale)
        m[:, 2] += (o_w - c_w) / 2.0 + shift[0], (o_h - c_h) / 2.0 + shift[1]
        if flip:  # x -> (o_w - 1) - x after the warp, as one affine
            m = np.array([[-1.0, 0.0, o_w - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0.0, 0.0, 1.0]])
        return m, flip

    def sample(self, indices: np.ndarray, rng: np.random.Generator, frames: str = "all",
               degrade_prob: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        picks = list(range(self.cache.window_length)) if frames == "all" else [self.key_index]
        crops, kps, vis = self._draw(indices, rng, picks, [picks.index(self.key_index)], degrade_prob)
        return crops, kps[:, 0], vis[:, 0]

    def sample_pairs(self, indices: np.ndarray, rng: np.random.Generator,
                     degrade_prob: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each window and the next key frame's window under ONE draw (a cache built with ``next_frame``).

        Returns ``(crops[B, T + 1, H, W, 3], keypoints[B, 2, K, 2], visible[B, 2, K])``: the windows are
        ``crops[:, :T]`` (key t) and ``crops[:, 1:]`` (key t + 1); each key frame is degraded on its own.
        """
        if not self.cache.meta.get("next_frame"):
            raise ValueError("window pairs need a crop cache built with next_frame (velocity_weight > 0)")
        picks = list(range(self.cache.window_length + 1))
        return self._draw(indices, rng, picks, [self.key_index, self.key_index + 1], degrade_prob)

    def _draw(self, indices: np.ndarray, rng: np.random.Generator, picks: list[int], key_positions: list[int],
              degrade_prob: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        o_h, o_w = self.out_hw
        sources = [(self.cache.keypoints, self.cache.visible)]
        if len(key_positions) == 2:
            sources.append((self.cache.next_keypoints, self.cache.next_visible))
        k = self.cache.keypoints.shape[1]
        crops = np.empty((len(indices), len(picks), o_h, o_w, 3), np.uint8)
        kps = np.empty((len(indices), len(sources), k, 2), np.float64)
        vis = np.empty((len(indices), len(sources), k), np.float32)
        for b, i in enumerate(indices):
            m, flip = self._affine(rng)
            window = np.asarray(self.cache.crops[i])
            for j, f in enumerate(picks):
                crops[b, j] = cv2.warpAffine(window[f], m, (o_w, o_h), flags=cv2.INTER_LINEAR,
                                             borderMode=cv2.BORDER_CONSTANT)
            for pos in key_positions:
                if degrade_prob > 0 and rng.random() < degrade_prob:
                    crops[b, pos] = degrade(crops[b, pos], rng)
            for s, (keypoints, visible) in enumerate(sources):
                xy = transform_points(keypoints[i].astype(np.float64), m)
                v = visible[i].copy()
                if flip:
                    xy, v = xy[self.flip_perm], v[self.flip_perm]
                kps[b, s], vis[b, s] = xy, v
        return crops, kps, vis


def encode_targets(codec: HeatmapCodec, keypoints: np.ndarray, visible: np.ndarray) -> tuple[Tensor, Tensor]:
    """Gaussian heatmaps ``[B, K, h, w]`` and weights ``[B, K]``; joints outside the crop get no target."""
    h, w = codec.input_size_hw
    targets, weights = [], []
    for xy, v in zip(keypoints, visible):
        inside = (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] <= w) & (xy[:, 1] <= h)
        hm, wt = codec.encode(xy, v * inside)
        targets.append(hm)
        weights.append(wt)
    return torch.from_numpy(np.stack(targets)), torch.from_numpy(np.stack(weights))


def _lr_lambda(warmup: int, total: int, final_fraction: float) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


# ------------------------------------------------------------------------------------------------
# a resumable loop


@dataclass
class Phase:
    """One training phase: what to optimise and how one step's loss is computed."""

    name: str
    steps: int
    modules: dict[str, nn.Module]  # saved in checkpoints
    optimizer: torch.optim.Optimizer
    step_fn: Callable[[np.random.Generator], dict[str, Tensor]]  # -> losses; "total" is optimised


def run_phase(phase: Phase, cfg: DistillConfig, out_dir: Path) -> list[dict[str, Any]]:
    """Run ``phase`` to its last step, resuming from ``out_dir/<name>.ckpt`` when present; returns loss rows."""
    from tqdm import tqdm

    ckpt_path = out_dir / f"{phase.name}.ckpt"
    csv_path = out_dir / f"losses_{phase.name}.csv"
    sched = torch.optim.lr_scheduler.LambdaLR(
        phase.optimizer, _lr_lambda(min(cfg.warmup_steps, phase.steps // 4 + 1), phase.steps, cfg.final_lr_fraction))
    rows: list[dict[str, Any]] = []
    start = 0
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        for name, module in phase.modules.items():
            module.load_state_dict(state["modules"][name])
        phase.optimizer.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = int(state["step"])
        rows = _read_rows(csv_path)[:start]
        logger.info("%s: resuming at step %d from %s", phase.name, start, ckpt_path)
    t0 = time.monotonic()
    bar = tqdm(total=phase.steps, initial=start, desc=phase.name, unit="step", disable=not cfg.progress, mininterval=10)
    for step in range(start, phase.steps):
        # Student and twin share phase 2's draws; phase 1 has its own stream.
        rng = np.random.default_rng([cfg.seed, 1 if phase.name == "phase1" else 2, step])
        losses = phase.step_fn(rng)
        phase.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        phase.optimizer.step()
        sched.step()
        row = {"phase": phase.name, "step": step + 1, "lr": phase.optimizer.param_groups[0]["lr"],
               "time_s": round(time.monotonic() - t0, 2), **{k: float(v.item()) for k, v in losses.items()}}
        rows.append(row)
        bar.update(1)
        bar.set_postfix(loss=f"{row['total']:.2e}")
        done = step + 1
        if done % cfg.checkpoint_every == 0 or done == phase.steps:
            _write_rows(rows, csv_path)
            state = {"step": done, "modules": {n: m.state_dict() for n, m in phase.modules.items()},
                     "optimizer": phase.optimizer.state_dict(), "scheduler": sched.state_dict()}
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save(state, tmp)
            tmp.replace(ckpt_path)
            logger.info("%s step %d/%d loss %.4e (%.0f s)", phase.name, done, phase.steps, row["total"],
                        time.monotonic() - t0)
    bar.close()
    return rows


def _write_rows(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as fh:
        return [{k: (v if k == "phase" else float(v)) for k, v in r.items()} for r in csv.DictReader(fh)]


# ------------------------------------------------------------------------------------------------
# the phases


def phase1(model: TDMI, sampler: WindowSampler, codec: HeatmapCodec, cfg: DistillConfig, indices: np.ndarray) -> Phase:
    """Single-frame fine-tuning of the backbone + its own keypoint head on augmented key-frame crops."""
    backbone = model.backbone
    backbone.requires_grad_(True)
    backbone.train()
    backbone.to(memory_format=torch.channels_last)
    head_params = list(backbone.keypoint_head.parameters()) if hasattr(backbone, "keypoint_head") else \
        list(backbone.final_layer.parameters())
    head_ids = {id(p) for p in head_params}
    trunk = [p for p in backbone.parameters() if id(p) not in head_ids]
    opt = torch.optim.Adam([{"params": head_params, "lr": cfg.phase1_lr},
                            {"params": trunk, "lr": cfg.phase1_lr * cfg.trunk_lr_scale}])

    def step(rng: np.random.Generator) -> dict[str, Tensor]:
        batch = rng.choice(indices, size=cfg.phase1_batch_size, replace=False)
        crops, kps, vis = sampler.sample(batch, rng, frames="key")
        target, weight = encode_targets(codec, kps, vis)
        pred = backbone.forward_heatmaps(crops_to_tensor(crops[:, 0]))
        return {"total": heatmap_mse(pred, target, weight)}

    return Phase("phase1", cfg.phase1_steps, {"backbone": backbone}, opt, step)


class FrozenBackbone:
    """The frozen phase-1 backbone for phase 2, run by ONNX Runtime (~3x eager torch on this CPU).

    ``__call__(crops[B, 3, H, W]) -> features[B, 4, C, h, w]`` (no autograd). Exported once per run
    to ``path``; the export is checked against eager torch on a random batch.
    """

    def __init__(self, model: TDMI, path: Path, threads: int) -> None:
        import onnxruntime as ort

        from tdmi_core.models.export import export_onnx

        model.backbone.eval()
        export_onnx(model, "backbone", path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        probe = torch.randn(2, 3, *model.cfg.input_size_hw)
        with torch.no_grad():
            expected = model.backbone(probe)
        error = (self(probe) - expected).abs().max().item()
        if error > 1e-3:
            raise RuntimeError(f"ONNX backbone differs from eager torch by {error:.2e}; not used for training")

    def __call__(self, crops: Tensor) -> Tensor:
        return torch.from_numpy(self.session.run(None, {self.input_name: crops.contiguous().numpy()})[0])


def phase2(model: TDMI, sampler: WindowSampler, codec: HeatmapCodec, cfg: DistillConfig, indices: np.ndarray,
           single_frame: bool, backbone: Callable[[Tensor], Tensor]) -> Phase:
    """Temporal-head training on a frozen backbone (the twin: every window = its key frame repeated)."""
    from tdmi_core.models.tde import set_deform_conv_impl

    mcfg = model.cfg
    model.backbone.requires_grad_(False)
    model.backbone.eval()
    head = model.temporal_head
    set_deform_conv_impl(head, "grid_sample")  # same numbers, several times faster on CPU
    head.requires_grad_(True)
    head.train()
    loss_fn = TDMILoss(mcfg, alpha=cfg.alpha, mi_form=cfg.mi_form)
    # NHWC weights make oneDNN pick its fast CPU convolutions.
    head.to(memory_format=torch.channels_last)
    loss_fn.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(list(head.parameters()) + list(loss_fn.parameters()), lr=cfg.phase2_lr)
    t = mcfg.num_frames
    k_index = mcfg.key_index
    stride_xy = torch.from_numpy(codec.stride_xy).float()

    def twin_windows(key_crops: np.ndarray) -> Tensor:
        """The twin's windows: each key frame's features repeated T times (the neighbours are never computed)."""
        keys = backbone(crops_to_tensor(key_crops))
        return keys[:, None].expand(len(keys), t, *keys.shape[1:])

    def step(rng: np.random.Generator) -> dict[str, Tensor]:
        batch = rng.choice(indices, size=cfg.phase2_batch_size, replace=False)
        # The same draws for student and twin: the twin just does not look at the neighbours.
        crops, kps, vis = sampler.sample(batch, rng, frames="all", degrade_prob=cfg.degrade_prob)
        target, weight = encode_targets(codec, kps, vis)
        b = len(batch)
        if single_frame:
            window = twin_windows(crops[:, k_index])
        else:
            window = backbone(crops_to_tensor(crops.reshape(-1, *crops.shape[2:]))).unflatten(0, (b, t))
        aux = head(window, return_aux=True)
        losses = loss_fn(aux, target, weight)
        return {k: losses[k] for k in ("total", "heatmap", "mi")}

    def pair_step(rng: np.random.Generator) -> dict[str, Tensor]:
        # Windows with key frames t and t+1 share T-1 frames, so their backbone features are computed once.
        batch = rng.choice(indices, size=cfg.phase2_batch_size // 2, replace=False)
        crops, kps, vis = sampler.sample_pairs(batch, rng, degrade_prob=cfg.degrade_prob)
        b, k = len(batch), kps.shape[2]
        target, weight = encode_targets(codec, kps.reshape(2 * b, k, 2), vis.reshape(2 * b, k))
        if single_frame:
            window = twin_windows(crops[:, k_index:k_index + 2].reshape(-1, *crops.shape[2:]))
        else:
            feats = backbone(crops_to_tensor(crops.reshape(-1, *crops.shape[2:]))).unflatten(0, (b, t + 1))
            window = torch.stack([feats[:, :t], feats[:, 1:]], 1).flatten(0, 1)  # [pair0 t, pair0 t+1, ...]
        aux = head(window, return_aux=True)
        losses = loss_fn(aux, target, weight)
        keypoints_hm = torch.from_numpy(kps).float() / stride_xy
        velocity = window_pair_velocity_loss(aux.heatmaps.unflatten(0, (b, 2)), keypoints_hm,
                                             weight.unflatten(0, (b, 2)))
        return {"total": losses["total"] + cfg.velocity_weight * velocity, "heatmap": losses["heatmap"],
                "mi": losses["mi"], "velocity": velocity}

    name = "phase2_single_frame" if single_frame else "phase2"
    return Phase(name, cfg.phase2_steps, {"head": head, "loss": loss_fn}, opt,
                 pair_step if cfg.velocity_weight > 0 else step)


def baseline_config(student: ModelConfig) -> ModelConfig:
    """The single-frame twin's config: the student's, renamed (the architecture is identical)."""
    return dataclasses.replace(
        student, name=student.name + SINGLE_FRAME_SUFFIX,
        description=f"Single-frame twin of {student.name}: same network, trained and run with every window = its "
        "key frame repeated (tdmi_core.train.distill.as_single_frame_model).",
    )


def prepare_cache(cfg: DistillConfig, mcfg: ModelConfig) -> CropCache:
    """Load the crop cache if it matches the settings, else build it."""
    videos = read_split(cfg.train_annotations, cfg.image_root)
    meta = cache_meta(videos, mcfg.input_size_hw, mcfg.delta, cfg.box_padding, cfg.context, cfg.key_frame_stride,
                      causal=mcfg.window == "causal", next_frame=cfg.velocity_weight > 0)
    meta["keypoint_names"] = list(videos[0].keypoint_names)
    try:
        cache = load_crop_cache(cfg.cache_dir, expected_meta=meta)
        logger.info("using crop cache %s (%d windows)", cfg.cache_dir, len(cache))
        return cache
    except (FileNotFoundError, ValueError) as e:
        logger.info("building crop cache: %s", e)
    start = time.monotonic()
    cache = build_crop_cache(videos, cfg.image_root, cfg.cache_dir, meta, progress=cfg.progress)
    logger.info("pre-cropped %d windows in %.1f s -> %s", len(cache), time.monotonic() - start, cfg.cache_dir)
    return cache


def _initial_model(cfg: DistillConfig, mcfg: ModelConfig) -> TDMI:
    torch.manual_seed(cfg.seed)
    model = build_model(mcfg)
    if mcfg.backbone == "movenet":
        from tdmi_core.models.movenet_import import load_movenet_onnx

        load_movenet_onnx(model.backbone, cfg.backbone_onnx)
    return model


def run_training(cfg: DistillConfig) -> dict[str, Any]:
    """Pre-crop, phase 1, phase 2 for the student and its twin; save weights, CSVs, plot, summary."""
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
    indices = np.arange(len(cache))
    if cfg.max_train_windows is not None and cfg.max_train_windows < len(cache):
        indices = np.unique(np.linspace(0, len(cache) - 1, cfg.max_train_windows).round().astype(np.int64))
    sampler = WindowSampler(cache, cfg, mcfg.input_size_hw)
    codec = HeatmapCodec(mcfg.input_size_hw, mcfg.heatmap_size_hw, mcfg.heatmap_sigma, refine=mcfg.decode_refine)

    student = _initial_model(cfg, mcfg)
    rows: list[dict[str, Any]] = []
    t1 = time.monotonic()
    phase1_path = Path(cfg.phase1_from) if cfg.phase1_from else out_dir / "phase1_backbone.pt"
    if phase1_path.is_file():
        student.backbone.load_state_dict(torch.load(phase1_path, map_location="cpu", weights_only=True))
        logger.info("phase 1: using %s", phase1_path)
    elif cfg.phase1_from:
        raise FileNotFoundError(f"phase1_from={cfg.phase1_from} does not exist; train the run that writes it first")
    else:
        rows += run_phase(phase1(student, sampler, codec, cfg, indices), cfg, out_dir)
        torch.save(student.backbone.state_dict(), phase1_path)
    timings["phase1_s"] = time.monotonic() - t1

    # The temporal head starts as the phase-1 model: its final layer is the tuned keypoint head.
    student.temporal_head.head.final_layer.load_state_dict(student.backbone.keypoint_head.state_dict())
    results: dict[str, Any] = {}
    runs = [("student", student, False, cfg.student_weights)]
    if cfg.baseline_weights:
        twin = build_model(baseline_config(mcfg))
        twin.load_state_dict(student.state_dict())
        runs.append(("single_frame", twin, True, cfg.baseline_weights))
    frozen = FrozenBackbone(student, out_dir / "phase1_backbone.onnx", cfg.torch_threads)
    for name, model, single, path in runs:
        t2 = time.monotonic()
        torch.manual_seed(cfg.seed + 2)  # the same VSD-predictor initialisation for both
        rows += run_phase(phase2(model, sampler, codec, cfg, indices, single, frozen), cfg, out_dir)
        model.eval()
        from tdmi_core.models.tde import set_deform_conv_impl

        set_deform_conv_impl(model, "torchvision")  # the exportable kernel, as every loaded model has
        save_weights(model, path)
        timings[f"phase2_{name}_s"] = time.monotonic() - t2
        results[name] = {"weights": path, "size_mb": round(Path(path).stat().st_size / 1e6, 2),
                         "parameters": count_parameters(model)}
        logger.info("saved %s (%.2f MB) after %.1f s", path, results[name]["size_mb"], timings[f"phase2_{name}_s"])
    phase1_dir = phase1_path.parent  # phase 1 may come from another run (phase1_from)
    all_rows = _read_rows(phase1_dir / "losses_phase1.csv") + _read_rows(out_dir / "losses_phase2.csv") \
        + _read_rows(out_dir / "losses_phase2_single_frame.csv")
    if cfg.loss_plot:
        plot_losses(all_rows, cfg.loss_plot)
    timings["total_s"] = time.monotonic() - t0
    summary = {
        "model_config": mcfg.to_dict(),
        "train_windows": int(len(indices)),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "models": results,
        "torch_threads": cfg.torch_threads,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    logger.info("done in %.1f min: %s", timings["total_s"] / 60, json.dumps(summary["timings_s"]))
    return summary


def plot_losses(rows: Sequence[Mapping[str, Any]], out_png: str | Path) -> Path:
    """Phase-1 loss, phase-2 heatmap losses (student vs single-frame twin) and, when trained with it, the
    window-pair velocity loss to one PNG (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    def series(phase: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        sel = [r for r in rows if r["phase"] == phase and key in r]
        x, y = np.array([r["step"] for r in sel]), np.array([float(r[key]) for r in sel])
        k = min(20, max(1, len(y)))
        return (x[k - 1:], np.convolve(y, np.ones(k) / k, mode="valid")) if len(y) else (x, y)

    panels = [("heatmap", "phase 2: L_H (heatmap MSE)")]
    if any("velocity" in r for r in rows):
        panels.append(("velocity", "phase 2: window-pair velocity (heatmap px)"))
    with_phase1 = any(r["phase"] == "phase1" for r in rows)  # absent when phase 1 came from another run
    fig, axes = plt.subplots(1, with_phase1 + len(panels), figsize=(5.5 * (with_phase1 + len(panels)), 4), squeeze=False)
    axes = list(axes[0])
    if with_phase1:
        axes[0].plot(*series("phase1", "total"))
        axes[0].set_title("phase 1: single-frame fine-tuning, heatmap MSE")
    for ax, (key, title) in zip(axes[with_phase1:], panels):
        for phase, label in (("phase2", "TDMI student (5 frames)"), ("phase2_single_frame", "single-frame twin")):
            x, y = series(phase, key)
            if len(y):  # a run without a twin has no twin curve
                ax.plot(x, y, label=label)
        ax.set_title(title)
        ax.legend()
    for ax in axes:
        ax.set_xlabel("step (mean of 20)")
        ax.set_yscale("log")
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tdmi_core.train.distill", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Two-phase CPU distillation of the default model (and its single-frame twin) on teacher-labelled videos.",
    )
    parser.add_argument("command", choices=("train", "precrop"), help="train: everything (resumes); precrop: the cache only")
    parser.add_argument("-c", "--config", default="config/train/distill_movenet.yaml", help="DistillConfig YAML")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config fields (YAML values), e.g. --set phase1_steps=10")
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
        run_training(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
