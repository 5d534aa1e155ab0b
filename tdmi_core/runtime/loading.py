"""From a :class:`RuntimeConfig` to a ready estimator: weights (or an untrained model), backend, estimator.

One loader for the pose node, the tools and the benchmark. Every failure to start (missing or
corrupt weights, a bad model config, a backend that cannot run here, a delta the model was not
built for) raises :class:`ModelLoadError` with the fix in its message.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from tdmi_core.models import ModelConfig, build_model, load_model_config
from tdmi_core.models.weights import load_weights
from tdmi_core.runtime.backends import build_backend
from tdmi_core.runtime.config import RuntimeConfig
from tdmi_core.runtime.estimator import StreamingPoseEstimator

_logger = logging.getLogger(__name__)

__all__ = ["ModelLoadError", "build_estimator", "calibrate_batchnorm", "load_model", "untrained_model"]


class ModelLoadError(RuntimeError):
    """The model could not be loaded or started; the message says why and how to fix it."""


def calibrate_batchnorm(module: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Set every BatchNorm's running statistics to those of ``module(inputs)`` (then eval mode)."""
    bns = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over this one pass
        bn.train()
    with torch.no_grad():
        out = module(inputs)
    for bn in bns:
        bn.eval()
    return out


def untrained_model(model_cfg: ModelConfig, seed: int = 0) -> torch.nn.Module:
    """An untrained model whose activations have trained-like magnitudes (tests, benchmarks).

    A freshly initialised HRNet (conv weights ~N(0, 0.001)) shrinks activations layer after layer
    until they are denormal floats, which CPUs process many times slower than normal ones, so
    timing a fresh model misstates the cost of a trained one (measured here: HRNet-W48 0.43 s vs
    0.30 s per crop with ONNX Runtime). Setting BatchNorm statistics from one pass over random
    inputs keeps every activation O(1), as in a trained network; the cost of the maths is the same.
    """
    torch.manual_seed(seed)
    model = build_model(model_cfg).eval()
    h, w = model_cfg.input_size_hw
    feats = calibrate_batchnorm(model.backbone, torch.rand(2 * model_cfg.num_frames, 3, h, w) * 4 - 2)
    calibrate_batchnorm(model.temporal_head, feats.reshape(2, model_cfg.num_frames, *feats.shape[1:]))
    return model.eval()


def load_model(cfg: RuntimeConfig) -> tuple[torch.nn.Module, ModelConfig, str]:
    """The model ``cfg`` asks for.

    Returns:
        ``(model, model_cfg, source)``; ``source`` names the weights file, or says UNTRAINED.

    Raises:
        ModelLoadError: no usable weights (unless ``allow_untrained``), corrupt weights, bad model config.
    """
    weights = Path(cfg.weights).expanduser() if cfg.weights else None
    if weights is not None and weights.is_file():
        try:
            model, model_cfg = load_weights(weights)
        except Exception as e:  # noqa: BLE001 - any failure to read weights stops start-up with one clear error
            raise ModelLoadError(
                f"cannot load weights {weights}: {e}. Re-train/re-download the file or point runtime.weights "
                "at a valid TDMI weights file."
            ) from e
        _logger.info("loaded %s weights from %s", model_cfg.name, weights)
        return model, model_cfg, f"weights {weights}"
    if not cfg.allow_untrained:
        where = f"weights file {weights} does not exist" if weights is not None else "runtime.weights is empty"
        raise ModelLoadError(
            f"no trained weights: {where}. Train a model (weights/tdmi_movenet.pt, weights/MODEL_CARD.md) or set runtime.weights; "
            "for pipeline tests only, set runtime.allow_untrained to run an untrained model."
        )
    try:
        model_cfg = load_model_config(cfg.model)
    except Exception as e:  # noqa: BLE001 - unknown name, missing file, invalid field: one clear error
        raise ModelLoadError(f"invalid runtime.model {cfg.model!r}: {e}") from e
    _logger.warning("runtime uses an UNTRAINED %s model (allow_untrained): poses are meaningless", model_cfg.name)
    return untrained_model(model_cfg, cfg.seed), model_cfg, f"UNTRAINED {model_cfg.name} (seed {cfg.seed})"


def build_estimator(cfg: RuntimeConfig, delta: int | None = None) -> tuple[StreamingPoseEstimator, str]:
    """Load the model, wrap it in the configured backend and return a ready estimator.

    Args:
        cfg: the runtime config.
        delta: the temporal span the caller expects (checked before a backend is built); None = the model's.

    Returns:
        ``(estimator, description)``; the description names the weights and the backend (for logs).

    Raises:
        ModelLoadError: see :func:`load_model`; also a delta mismatch or a backend that fails to start.
    """
    model, model_cfg, source = load_model(cfg)
    if delta is not None and int(model_cfg.delta) != delta:
        raise ModelLoadError(
            f"delta={delta} but the model ({source}) is built for delta={model_cfg.delta}; set delta to {model_cfg.delta}"
        )
    try:
        backend = build_backend(cfg, model, model_cfg)
    except Exception as e:  # noqa: BLE001 - missing library, no GPU, failed export: one clear start-up error
        raise ModelLoadError(
            f"backend {cfg.backend!r} ({cfg.precision} on {cfg.device}) failed to start: {type(e).__name__}: {e}"
        ) from e
    estimator = StreamingPoseEstimator(backend, model_cfg, mode=cfg.mode, hold_threshold=cfg.hold_threshold,
                                       box_padding=cfg.box_padding, max_batch=cfg.max_batch,
                                       single_frame=cfg.single_frame,
                                       shared_joint_distance=cfg.shared_joint_distance)
    return estimator, f"{source}, backend {backend.name}"

