"""The training configuration: one frozen, flat dataclass, validated on construction, YAML-loadable.

``config/train/*.yaml`` hold a mapping of :class:`TrainConfig` fields; the CLI (``python -m
tdmi_core.train``) uses such a file for its defaults and command-line flags override them. The resolved
config is written as ``args.yaml`` into the output directory.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tdmi_core.config_io import check_known_fields, read_yaml_mapping
from tdmi_core.data.augment import AugmentConfig

ANNOTATION_FORMATS = ("auto", "posetrack17", "posetrack18", "posetrack21")
DEVICES = ("auto", "cpu", "cuda")
DIST_BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs (defaults: the paper's PoseTrack2017 protocol).

    Attributes (grouped):
        model: Model variant name or model YAML path (``tdmi_core.models.load_model_config``).
        frozen_backbone: Freeze HRNet (True/False) or None to keep the model config's setting.
        init_weights: Optional full-model weights (``tdmi_core.models`` weights file) to start from.
        hrnet_checkpoint: Optional official HRNet pose checkpoint (COCO) loaded into the backbone.
        train_annotations / val_annotations: Directory of per-video json files (or one file).
        train_image_root / val_image_root: Directory the image ``file_name`` paths are relative to.
        annotation_format: auto | posetrack17 | posetrack18 | posetrack21.
        val_detections: Optional DCPose-format box file for the per-epoch mAP (needs ``tdmi_core.eval``).
        sigma, box_padding, min_labelled_joints: Target Gaussian sigma (heatmap px), box enlargement,
            minimum labelled joints for a training sample.
        key_frame_stride: Use every n-th labelled frame of a training video as a key frame (1 = all).
        augment, rotation_*, scale_*, half_body_*, flip_prob: Window augmentation (paper defaults).
        epochs, batch_size (per process), lr, lr_milestones, lr_gamma, weight_decay, alpha (MI weight),
        grad_clip_norm: Optimisation (Adam, x0.1 at epochs 6/12/18, 20 epochs).
        amp: Mixed precision on CUDA (ignored on CPU). device: auto | cpu | cuda.
        num_workers, frame_cache_size: DataLoader workers and decoded frames cached per worker.
        seed: Seeds the model init, the sample order and every augmentation draw.
        output_dir, resume ("auto" = output_dir/last.pt when present, or a checkpoint path),
        val_every_epochs, pck_threshold, max_iters_per_epoch / max_val_samples (short runs), tensorboard,
        progress (tqdm bars), log_every_iters, dist_backend, torch_threads.
    """

    # model
    model: str = "tdmi_w48_384x288"
    frozen_backbone: bool | None = None
    init_weights: str | None = None
    hrnet_checkpoint: str | None = None
    # data
    train_annotations: str = ""
    train_image_root: str = ""
    val_annotations: str | None = None
    val_image_root: str | None = None
    annotation_format: str = "auto"
    val_detections: str | None = None
    val_detection_threshold: float = 0.0
    sigma: float = 3.0
    box_padding: float = 1.25
    min_labelled_joints: int = 1
    key_frame_stride: int = 1
    # augmentation
    augment: bool = True
    rotation_std_deg: float = 45.0
    rotation_max_deg: float = 45.0
    rotation_prob: float = 0.6
    scale_std: float = 0.35
    scale_min: float = 0.65
    scale_max: float = 1.35
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    flip_prob: float = 0.5
    # optimisation
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    lr_milestones: tuple[int, ...] = (6, 12, 18)
    lr_gamma: float = 0.1
    weight_decay: float = 0.0
    alpha: float = 1.0
    grad_clip_norm: float | None = None
    amp: bool = True
    device: str = "auto"
    # loading
    num_workers: int = 4
    frame_cache_size: int = 0
    seed: int = 0
    # run
    output_dir: str = "runs/train"
    resume: str | None = None
    val_every_epochs: int = 1
    pck_threshold: float = 0.2
    max_iters_per_epoch: int | None = None
    max_val_samples: int | None = None
    tensorboard: bool = False
    progress: bool = True
    log_every_iters: int = 20
    dist_backend: str = "auto"
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.lr_milestones, list):
            object.__setattr__(self, "lr_milestones", tuple(self.lr_milestones))
        _validate(self)

    def augment_config(self) -> AugmentConfig | None:
        """The augmentation of training windows, or None when ``augment`` is off."""
        if not self.augment:
            return None
        return AugmentConfig(
            rotation_std_deg=self.rotation_std_deg, rotation_max_deg=self.rotation_max_deg,
            rotation_prob=self.rotation_prob, scale_std=self.scale_std, scale_min=self.scale_min,
            scale_max=self.scale_max, half_body_prob=self.half_body_prob,
            half_body_min_joints=self.half_body_min_joints, flip_prob=self.flip_prob,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists for tuples): YAML- and ``torch.load(weights_only=True)``-safe."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}


def _validate(cfg: TrainConfig) -> None:
    def check(ok: bool, message: str) -> None:
        if not ok:
            raise ValueError(f"TrainConfig: {message}")

    check(bool(cfg.model), "model must name a model config (e.g. tdmi_lite) or a model YAML path")
    check(cfg.annotation_format in ANNOTATION_FORMATS, f"annotation_format must be one of {ANNOTATION_FORMATS}, got {cfg.annotation_format!r}")
    check(cfg.device in DEVICES, f"device must be one of {DEVICES}, got {cfg.device!r}")
    check(cfg.dist_backend in DIST_BACKENDS, f"dist_backend must be one of {DIST_BACKENDS}, got {cfg.dist_backend!r}")
    for name in ("epochs", "batch_size", "val_every_epochs", "log_every_iters", "min_labelled_joints", "key_frame_stride"):
        check(isinstance(getattr(cfg, name), int) and getattr(cfg, name) >= 1, f"{name} must be an integer >= 1, got {getattr(cfg, name)!r}")
    for name in ("num_workers", "frame_cache_size", "seed"):
        check(isinstance(getattr(cfg, name), int) and getattr(cfg, name) >= 0, f"{name} must be an integer >= 0, got {getattr(cfg, name)!r}")
    for name in ("max_iters_per_epoch", "max_val_samples", "torch_threads"):
        value = getattr(cfg, name)
        check(value is None or (isinstance(value, int) and value >= 1), f"{name} must be null or an integer >= 1, got {value!r}")
    for name in ("lr", "sigma", "box_padding", "pck_threshold"):
        value = getattr(cfg, name)
        check(isinstance(value, (int, float)) and math.isfinite(value) and value > 0, f"{name} must be a positive number, got {value!r}")
    for name in ("lr_gamma", "weight_decay", "alpha"):
        value = getattr(cfg, name)
        check(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, f"{name} must be a number >= 0, got {value!r}")
    check(cfg.grad_clip_norm is None or cfg.grad_clip_norm > 0, f"grad_clip_norm must be null or > 0, got {cfg.grad_clip_norm!r}")
    check(all(isinstance(m, int) and m >= 1 for m in cfg.lr_milestones) and list(cfg.lr_milestones) == sorted(cfg.lr_milestones),
          f"lr_milestones must be increasing epoch numbers >= 1, got {cfg.lr_milestones!r}")
    check((cfg.val_annotations is None) == (cfg.val_image_root is None) or cfg.val_annotations is None,
          "val_annotations needs val_image_root (the directory its file_name paths are relative to)")
    check(cfg.val_detections is None or cfg.val_annotations is not None, "val_detections needs val_annotations (the frame lists)")
    cfg.augment_config()  # validates the augmentation ranges


def train_config_fields() -> dict[str, dataclasses.Field]:
    """Field name -> dataclass field, in declaration order."""
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a training YAML file and check its keys against :class:`TrainConfig` (no validation of values)."""
    data = read_yaml_mapping(path, "training config")
    check_known_fields(data, TrainConfig, "training config", source=str(path))
    return dict(data)


def load_train_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """A validated :class:`TrainConfig` from a YAML file plus keyword overrides."""
    data = load_yaml_mapping(path)
    unknown = sorted(set(overrides) - set(train_config_fields()))
    if unknown:
        raise ValueError(f"unknown training config overrides {unknown}")
    data.update(overrides)
    return TrainConfig(**data)


def save_train_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (``args.yaml``)."""
    import yaml

    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
