"""The training loop: L = L_H + alpha * L_MI with Adam and step decay, AMP, checkpoints, logs, DDP.

Split into build (model, loss, data, optimizer), loop (one epoch, validation) and checkpointing.
Run it with ``python -m tdmi_core.train`` (see ``tdmi_core/train/__main__.py``) or ``Trainer(cfg).fit()``.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from tdmi_core.data.dataset import PoseTrackWindowDataset, gt_sample_refs, loader_worker_kwargs
from tdmi_core.data.posetrack import VideoRecord, read_split
from tdmi_core.eval.pck import PCKCounts, box_normalised_pck_counts
from tdmi_core.models import TDMI, ModelConfig, build_model, load_model_config
from tdmi_core.train.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from tdmi_core.train.config import TrainConfig, save_train_config
from tdmi_core.train.ddp import DistInfo, all_reduce_sum, barrier, init_distributed
from tdmi_core.train.plots import plot_training_curves
from tdmi_core.train.predict import evaluate_map, predict_batch_keypoints

logger = logging.getLogger(__name__)

STEP_FIELDS = ("step", "epoch", "lr", "loss", "heatmap", "mi")
EPOCH_FIELDS = ("epoch", "lr", "train_loss", "train_heatmap", "train_mi", "val_pck", "val_map", "epoch_time_s", "samples_per_s")


def build_loss(model_cfg: ModelConfig, alpha: float) -> nn.Module:
    """The model helper's :class:`TDMILoss` for this model (its VSD heads train with the model)."""
    from tdmi_core.train.losses import TDMILoss  # the loss module is owned by the model helper

    return TDMILoss(model_cfg, alpha=alpha)


class TrainStep(nn.Module):
    """Model + loss as one module, so DistributedDataParallel synchronises the gradients of both.

    ``forward(frames[B, T, 3, H, W], heatmaps[B, K, h, w], weights[B, K]) -> {"total", "heatmap", "mi"}``.
    With a frozen backbone its features are computed without autograd (the paper's protocol; far
    cheaper than back-propagating into HRNet).
    """

    def __init__(self, model: TDMI, loss: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, frames: torch.Tensor, heatmaps: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t = frames.shape[:2]
        frozen = not any(p.requires_grad for p in self.model.backbone.parameters())
        with torch.no_grad() if frozen else contextlib.nullcontext():
            features = self.model.backbone(frames.flatten(0, 1))
        aux = self.model.temporal_head(features.unflatten(0, (b, t)), return_aux=True)
        return self.loss(aux, heatmaps, weights)


class Trainer:
    """One training run described by a :class:`TrainConfig` (single process or one torchrun rank)."""

    def __init__(self, cfg: TrainConfig, dist_info: DistInfo | None = None) -> None:
        self.cfg = cfg
        self.dist = dist_info or init_distributed(cfg.device, cfg.dist_backend)
        self.device = self.dist.device
        self.output_dir = Path(cfg.output_dir)
        if cfg.torch_threads is not None:
            torch.set_num_threads(cfg.torch_threads)
        self.amp = bool(cfg.amp and self.device.type == "cuda")

        torch.manual_seed(cfg.seed)  # same initialisation on every rank (DDP also broadcasts it)
        overrides = {} if cfg.frozen_backbone is None else {"freeze_backbone": bool(cfg.frozen_backbone)}
        self.model_cfg = load_model_config(cfg.model, **overrides)
        self.model = build_model(self.model_cfg)
        self._load_initial_weights()
        self.loss = build_loss(self.model_cfg, cfg.alpha)
        self.step_module = TrainStep(self.model, self.loss).to(self.device)
        self.ddp_module: nn.Module = self.step_module
        if self.dist.distributed:
            self.ddp_module = nn.parallel.DistributedDataParallel(
                self.step_module, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        params = [p for p in self.step_module.parameters() if p.requires_grad]
        if not params:
            raise ValueError("nothing to train: every parameter is frozen")
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, list(cfg.lr_milestones), cfg.lr_gamma)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

        if not cfg.train_annotations or not cfg.train_image_root:
            raise ValueError("set train_annotations (a directory of per-video json files) and train_image_root "
                             "(the directory their image paths are relative to), in the YAML or with --train-annotations "
                             "/ --train-image-root")
        self.train_videos = read_split(cfg.train_annotations, cfg.train_image_root, cfg.annotation_format)
        self.train_set = self._dataset(self.train_videos, cfg.train_image_root, augment=True, stride=cfg.key_frame_stride)
        if len(self.train_set) == 0:
            raise ValueError(f"{cfg.train_annotations}: no labelled person with >= {cfg.min_labelled_joints} joints to train on")
        self.val_videos: list[VideoRecord] = []
        self.val_set: PoseTrackWindowDataset | None = None
        if cfg.val_annotations:
            self.val_videos = read_split(cfg.val_annotations, cfg.val_image_root, cfg.annotation_format)
            self.val_set = self._dataset(self.val_videos, cfg.val_image_root, augment=False)
        self.train_sampler = DistributedSampler(self.train_set, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                                shuffle=True, seed=cfg.seed, drop_last=False)
        self.start_epoch = 0
        self.global_step = 0
        self.best_metric = -math.inf
        self._writer = None
        if cfg.resume:
            self._maybe_resume(cfg.resume)

    # ------------------------------------------------------------------------------------ build

    def _dataset(self, videos: list[VideoRecord], image_root: str | None, augment: bool, stride: int = 1) -> PoseTrackWindowDataset:
        cfg = self.cfg
        return PoseTrackWindowDataset(
            videos, image_root or "", gt_sample_refs(videos, cfg.min_labelled_joints, stride),
            self.model_cfg.input_size_hw, self.model_cfg.heatmap_size_hw, cfg.sigma, self.model_cfg.delta,
            cfg.box_padding, cfg.augment_config() if augment else None, cfg.seed, cfg.frame_cache_size,
        )

    def _load_initial_weights(self) -> None:
        cfg = self.cfg
        if cfg.init_weights:
            from tdmi_core.models.weights import load_weights

            loaded, loaded_cfg = load_weights(cfg.init_weights)
            mine = dataclasses.replace(self.model_cfg, freeze_backbone=False, description="")
            theirs = dataclasses.replace(loaded_cfg, freeze_backbone=False, description="")
            if mine != theirs:
                raise ValueError(f"init_weights {cfg.init_weights} hold model {loaded_cfg.name!r} which differs from "
                                 f"the configured {self.model_cfg.name!r}; pass a matching --model")
            self.model.load_state_dict(loaded.state_dict(), strict=True)
            logger.info("initialised the model from %s", cfg.init_weights)
        if cfg.hrnet_checkpoint:
            from tdmi_core.models.weights import load_hrnet_checkpoint

            load_hrnet_checkpoint(self.model, cfg.hrnet_checkpoint)

    def _loader(self, dataset, sampler=None, shuffle: bool = False) -> DataLoader:
        cfg = self.cfg
        return DataLoader(
            dataset, batch_size=cfg.batch_size, sampler=sampler, shuffle=shuffle if sampler is None else False,
            **loader_worker_kwargs(cfg.num_workers),
            pin_memory=self.device.type == "cuda", drop_last=False, persistent_workers=False,
        )

    # ------------------------------------------------------------------------------------ checkpoints

    def _checkpoint_payload(self, epochs_done: int) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "loss": self.loss.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": epochs_done,
            "global_step": self.global_step,
            "best_metric": self.best_metric,
            "rng": capture_rng_state(),
            "train_config": self.cfg.to_dict(),
            "model_config": self.model_cfg.to_dict(),
        }

    def _maybe_resume(self, resume: str) -> None:
        path = self.output_dir / "last.pt" if resume == "auto" else Path(resume)
        if resume == "auto" and not path.is_file():
            logger.info("resume=auto: no %s yet, starting fresh", path)
            return
        state = load_checkpoint(path, map_location="cpu")
        if state.get("model_config") != self.model_cfg.to_dict():
            raise CheckpointError(f"{path} was trained with model config {state.get('model_config', {}).get('name')!r} "
                                  f"settings that differ from the configured {self.model_cfg.name!r}; resume with the same model options")
        self.model.load_state_dict(state["model"], strict=True)
        self.loss.load_state_dict(state["loss"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.start_epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.best_metric = float(state.get("best_metric", -math.inf))
        restore_rng_state(state["rng"])
        logger.info("resumed from %s at epoch %d (step %d)", path, self.start_epoch, self.global_step)

    def save(self, epochs_done: int, best: bool = False) -> None:
        """Write ``last.pt`` (and ``best.pt`` + deployable ``model_best.pt``) on the main rank."""
        if not self.dist.is_main:
            return
        payload = self._checkpoint_payload(epochs_done)
        save_checkpoint(self.output_dir / "last.pt", payload)
        if best:
            save_checkpoint(self.output_dir / "best.pt", payload)
            self.export_weights(self.output_dir / "model_best.pt")

    def export_weights(self, path: Path) -> None:
        """Model-only weights for the runtime (``tdmi_core.models.weights.load_weights``)."""
        from tdmi_core.models.weights import save_weights

        save_weights(self.model, path)

    # ------------------------------------------------------------------------------------ loop

    def _batches(self, loader: DataLoader, desc: str, total: int) -> Iterator[tuple[int, dict[str, Any]]]:
        iterator: Any = enumerate(loader)
        if self.cfg.progress and self.dist.is_main:
            from tqdm import tqdm

            iterator = tqdm(iterator, total=total, desc=desc, dynamic_ncols=True, leave=False)
        for i, batch in iterator:
            if i >= total:
                break
            yield i, batch

    def train_one_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the (sharded) training set; returns the epoch's mean losses over all ranks."""
        cfg = self.cfg
        self.train_set.set_epoch(epoch)
        self.train_sampler.set_epoch(epoch)
        loader = self._loader(self.train_set, sampler=self.train_sampler)
        total = len(loader) if cfg.max_iters_per_epoch is None else min(len(loader), cfg.max_iters_per_epoch)
        self.step_module.train()
        sums = torch.zeros(4, dtype=torch.float64)  # loss, heatmap, mi, samples
        lr = self.optimizer.param_groups[0]["lr"]
        for _, batch in self._batches(loader, f"epoch {epoch + 1}/{cfg.epochs}", total):
            frames = batch["frames"].to(self.device, non_blocking=True)
            heatmaps = batch["heatmaps"].to(self.device, non_blocking=True)
            weights = batch["target_weight"].to(self.device, non_blocking=True)
            with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp):
                losses = self.ddp_module(frames, heatmaps, weights)
            total_loss = losses["total"]
            if not torch.isfinite(total_loss):
                raise FloatingPointError(f"non-finite loss {total_loss.item()} at epoch {epoch + 1} step {self.global_step}; "
                                         "lower lr or disable amp")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(total_loss).backward()
            if cfg.grad_clip_norm is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], cfg.grad_clip_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            n = frames.shape[0]
            step_vals = torch.tensor([float(losses[k].detach()) for k in ("total", "heatmap", "mi")] + [1.0], dtype=torch.float64)
            step_vals = all_reduce_sum(step_vals, self.dist)  # sums of the ranks' batch means, and the rank count
            mean = step_vals[:3] / step_vals[3]
            sums[:3] += mean * n
            sums[3] += n
            self.global_step += 1
            if self.dist.is_main:
                self._log_step({"step": self.global_step, "epoch": epoch + 1, "lr": lr,
                                "loss": float(mean[0]), "heatmap": float(mean[1]), "mi": float(mean[2])})
        count = max(float(sums[3]), 1.0)
        return {"train_loss": float(sums[0]) / count, "train_heatmap": float(sums[1]) / count,
                "train_mi": float(sums[2]) / count, "samples": float(sums[3]) * self.dist.world_size, "lr": lr}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Box-normalised PCK@``pck_threshold`` on the validation set (GT boxes), over all ranks."""
        if self.val_set is None:
            return {"val_pck": float("nan")}
        cfg = self.cfg
        indices = list(range(len(self.val_set)))
        if cfg.max_val_samples is not None and cfg.max_val_samples < len(indices):
            # evenly spread over the set (every video), the same subset every epoch
            indices = sorted(set(np.linspace(0, len(indices) - 1, cfg.max_val_samples).round().astype(int).tolist()))
        shard = Subset(self.val_set, indices[self.dist.rank::self.dist.world_size])
        loader = self._loader(shard)
        self.model.eval()
        counts = PCKCounts(np.zeros(self.model_cfg.num_keypoints), np.zeros(self.model_cfg.num_keypoints))
        for _, batch in self._batches(loader, "val", len(loader)):
            xy, _ = predict_batch_keypoints(self.model, batch, self.val_set.codec, self.device, self.amp)
            gt = batch["keypoints_image"].numpy()
            counts = counts + box_normalised_pck_counts(xy, gt[..., :2], gt[..., 2], batch["box_xyxy"].numpy(), cfg.pck_threshold)
        reduced = all_reduce_sum(torch.from_numpy(np.stack([counts.correct, counts.total])), self.dist).numpy()
        result = {"val_pck": PCKCounts(reduced[0], reduced[1]).pck}
        result.update(self._validate_map())
        return result

    def _validate_map(self) -> dict[str, float]:
        """PoseTrack mAP with the detector boxes (main rank only), when ``val_detections`` is set."""
        if not self.cfg.val_detections or not self.dist.is_main:
            return {}
        return {"val_map": evaluate_map(self.model, self.model_cfg, self.cfg, self.val_videos, self.device,
                                        self.output_dir / "val_predictions")}

    # ------------------------------------------------------------------------------------ logs

    def _append_csv(self, name: str, fields: tuple[str, ...], row: dict[str, Any]) -> None:
        path = self.output_dir / name
        new = not path.is_file()
        with path.open("a", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def _log_step(self, row: dict[str, Any]) -> None:
        self._append_csv("steps.csv", STEP_FIELDS, row)
        if self._writer is not None:
            for key in ("loss", "heatmap", "mi", "lr"):
                self._writer.add_scalar(f"train/{key}", row[key], row["step"])
        if row["step"] % self.cfg.log_every_iters == 0:
            logger.info("step %d: loss %.6f (L_H %.6f, L_MI %.6f) lr %.2e", row["step"], row["loss"], row["heatmap"], row["mi"], row["lr"])

    def _log_epoch(self, row: dict[str, Any]) -> None:
        self._append_csv("epochs.csv", EPOCH_FIELDS, row)
        if self._writer is not None:
            for key in EPOCH_FIELDS[1:]:
                value = row.get(key)
                if isinstance(value, float) and not math.isnan(value):
                    self._writer.add_scalar(f"epoch/{key}", value, row["epoch"])
            self._writer.flush()
        plot_training_curves(self.output_dir / "steps.csv", self.output_dir / "epochs.csv", self.output_dir / "curves.png")

    def _open_tensorboard(self) -> None:
        if not (self.cfg.tensorboard and self.dist.is_main):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise RuntimeError("tensorboard logging is on but the tensorboard package is missing: "
                               "pip install tensorboard, or pass --no-tensorboard") from e
        self._writer = SummaryWriter(log_dir=str(self.output_dir / "tensorboard"))

    # ------------------------------------------------------------------------------------ run

    def fit(self) -> dict[str, Any]:
        """Train from ``start_epoch`` to ``epochs``; returns the last epoch's log row."""
        cfg = self.cfg
        if self.dist.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_train_config(cfg, self.output_dir / "args.yaml")
            logger.info("training %s on %d windows (%d videos), %d val windows; device %s x%d, amp %s",
                        self.model_cfg.name, len(self.train_set), len(self.train_videos),
                        len(self.val_set) if self.val_set else 0, self.device, self.dist.world_size, self.amp)
        self._open_tensorboard()
        row: dict[str, Any] = {}
        try:
            for epoch in range(self.start_epoch, cfg.epochs):
                start = time.perf_counter()
                stats = self.train_one_epoch(epoch)
                self.scheduler.step()
                elapsed = time.perf_counter() - start
                val: dict[str, float] = {}
                if self.val_set is not None and ((epoch + 1) % cfg.val_every_epochs == 0 or epoch + 1 == cfg.epochs):
                    val = self.validate()
                metric = val.get("val_map", val.get("val_pck", float("nan")))
                best = not math.isnan(metric) and metric > self.best_metric
                if best:
                    self.best_metric = metric
                row = {"epoch": epoch + 1, "lr": stats["lr"], "train_loss": stats["train_loss"],
                       "train_heatmap": stats["train_heatmap"], "train_mi": stats["train_mi"],
                       "val_pck": val.get("val_pck", float("nan")), "val_map": val.get("val_map", float("nan")),
                       "epoch_time_s": elapsed, "samples_per_s": stats["samples"] / max(elapsed, 1e-9)}
                if self.dist.is_main:
                    self._log_epoch(row)
                    logger.info("epoch %d/%d: loss %.6f, val PCK %.4f, val mAP %.2f, %.1f s",
                                epoch + 1, cfg.epochs, row["train_loss"], row["val_pck"], row["val_map"], elapsed)
                self.save(epoch + 1, best=best)
                barrier(self.dist)
            if self.dist.is_main:
                self.export_weights(self.output_dir / "model_final.pt")
        finally:
            if self._writer is not None:
                self._writer.close()
        return row
