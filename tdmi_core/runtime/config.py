"""Runtime configuration (frozen, validated) and the factory that builds an estimator from it."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from tdmi_core.config_io import check_known_fields, read_yaml_mapping
from tdmi_core.runtime.backends.base import PRECISIONS
from tdmi_core.runtime.estimator import MODES, StreamingPoseEstimator

_logger = logging.getLogger(__name__)

__all__ = ["RuntimeConfig", "BACKENDS", "load_runtime_config", "build_backend", "build_estimator", "default_cache_dir"]

BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "tensorrt")


def default_cache_dir() -> Path:
    """Engine/ONNX cache: ``$TDMI_CACHE_DIR``, else ``$XDG_CACHE_HOME/tdmi_ros``, else ``~/.cache/tdmi_ros``."""
    if os.environ.get("TDMI_CACHE_DIR"):
        return Path(os.environ["TDMI_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tdmi_ros"


@dataclass(frozen=True)
class RuntimeConfig:
    """How to run a TDMI model on a stream.

    Attributes:
        model: model config name (``tdmi_core.models.MODEL_CONFIGS``) or YAML path; ignored for the
            architecture when ``weights`` is given (the weights file carries its config).
        weights: TDMI weights file (``tdmi_core.models.weights.save_weights``); None needs ``allow_untrained``.
        allow_untrained: permit random weights (benchmarks and tests only: the poses are meaningless).
        backend: ``"torch"``, ``"onnxruntime"`` (CPU) or ``"tensorrt"`` (CUDA, Torch-TensorRT).
        device: ``"cpu"`` or ``"cuda"``/``"cuda:N"``.
        precision: ``"fp32"``, ``"bf16"`` (torch CPU/CUDA) or ``"fp16"`` (CUDA).
        mode: ``"streaming"`` (feature reuse with held crop boxes) or ``"exact"`` (paper-faithful crops).
        hold_threshold: streaming: fraction of the crop size a person may move before the crop box follows.
        box_padding: person box enlargement (1.25 in the paper family).
        min_batch, opt_batch, max_batch: batch range of compiled engines (TensorRT profile); max_batch
            also caps every backend call (bigger batches are split).
        cache_dir: directory for TensorRT engines and exported ONNX files; None → :func:`default_cache_dir`.
        num_threads: torch / ONNX Runtime CPU threads; None leaves the library default.
    """

    model: str = "tdmi_lite"
    weights: str | None = None
    allow_untrained: bool = False
    backend: str = "torch"
    device: str = "cpu"
    precision: str = "fp32"
    mode: str = "streaming"
    hold_threshold: float = 0.1
    box_padding: float = 1.25
    min_batch: int = 1
    opt_batch: int = 5
    max_batch: int = 16
    cache_dir: str | None = None
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"runtime backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"runtime precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.mode not in MODES:
            raise ValueError(f"runtime mode must be one of {MODES}, got {self.mode!r}")
        if not (self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")):
            raise ValueError(f"runtime device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.backend == "tensorrt" and not self.device.startswith("cuda"):
            raise ValueError("backend 'tensorrt' needs device 'cuda'; use backend 'torch' or 'onnxruntime' on CPU")
        if self.backend == "onnxruntime" and self.device != "cpu":
            raise ValueError("backend 'onnxruntime' runs on device 'cpu' here; use 'tensorrt' or 'torch' on CUDA")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(
                f"need 1 <= min_batch <= opt_batch <= max_batch, got {self.min_batch}, {self.opt_batch}, {self.max_batch}"
            )
        if not self.hold_threshold >= 0:
            raise ValueError(f"hold_threshold must be >= 0, got {self.hold_threshold}")
        if not self.box_padding > 0:
            raise ValueError(f"box_padding must be > 0, got {self.box_padding}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or null, got {self.num_threads}")
        if self.weights is None and not self.allow_untrained:
            raise ValueError(
                "runtime config has no weights: set weights to a TDMI weights file "
                "(or allow_untrained: true for benchmarks, whose poses are meaningless)"
            )

    def cache_path(self) -> Path:
        """Resolved cache directory."""
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()


def load_runtime_config(source: str | Path | Mapping[str, Any] | None = None, **overrides: Any) -> RuntimeConfig:
    """A validated :class:`RuntimeConfig` from a YAML file, a mapping or defaults, plus overrides.

    A YAML file may hold the fields at top level or under a ``runtime:`` key.
    """
    data: dict[str, Any] = {}
    if isinstance(source, Mapping):
        data = dict(source)
    elif source is not None:
        loaded = read_yaml_mapping(source, "runtime config")
        data = dict(loaded.get("runtime", loaded))
    data.update(overrides)
    check_known_fields(data, RuntimeConfig, "runtime config")
    return RuntimeConfig(**data)


def _load_model(cfg: RuntimeConfig) -> tuple[Any, Any]:
    from tdmi_core.models import build_model, load_model_config

    if cfg.weights is not None:
        from tdmi_core.models.weights import load_weights

        model, model_cfg = load_weights(cfg.weights)
        _logger.info("loaded %s weights from %s", model_cfg.name, cfg.weights)
        return model, model_cfg
    model_cfg = load_model_config(cfg.model)
    _logger.warning("runtime uses UNTRAINED %s weights (allow_untrained): poses are meaningless", model_cfg.name)
    return build_model(model_cfg), model_cfg


def build_backend(cfg: RuntimeConfig, model: Any, model_cfg: Any) -> Any:
    """The backend named by ``cfg`` around ``model`` (heavy libraries imported only here)."""
    if cfg.num_threads is not None:
        import torch

        torch.set_num_threads(cfg.num_threads)
    if cfg.backend == "torch":
        from tdmi_core.runtime.backends.torch_backend import TorchBackend

        return TorchBackend(model, device=cfg.device, precision=cfg.precision, max_batch=cfg.max_batch)
    if cfg.backend == "onnxruntime":
        from tdmi_core.runtime.backends.onnx_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(
            model, model_cfg, cache_dir=cfg.cache_path() / "onnx", num_threads=cfg.num_threads, max_batch=cfg.max_batch
        )
    from tdmi_core.runtime.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(
        model,
        model_cfg,
        device=cfg.device,
        precision=cfg.precision,
        batch_range=(cfg.min_batch, cfg.opt_batch, cfg.max_batch),
        cache_dir=cfg.cache_path() / "engines",
    )


def build_estimator(cfg: RuntimeConfig) -> StreamingPoseEstimator:
    """Load the model, wrap it in the configured backend and return a ready estimator."""
    model, model_cfg = _load_model(cfg)
    backend = build_backend(cfg, model, model_cfg)
    return StreamingPoseEstimator(
        backend,
        model_cfg,
        mode=cfg.mode,
        hold_threshold=cfg.hold_threshold,
        box_padding=cfg.box_padding,
        max_batch=cfg.max_batch,
    )
