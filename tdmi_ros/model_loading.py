"""Build the streaming estimator for the pose node from its parameters, failing loudly and early.

Missing or corrupt weights raise :class:`ModelLoadError` with the fix in the message; a randomly
initialised model is only built when ``allow_random_weights`` is set (tests, demos before training).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tdmi_ros.params import PoseNodeConfig

_logger = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message says why and how to fix it."""


def _load_model(cfg: PoseNodeConfig, base_dir: Path | None) -> tuple[Any, Any, str]:
    """Return ``(model, model_cfg, description)``."""
    import torch

    from tdmi_core.models.configs import load_model_config
    from tdmi_core.models.tdmi import build_model

    weights = cfg.resolve_path(cfg.weights_path, base_dir) if cfg.weights_path else None
    if weights is not None and weights.exists():
        from tdmi_core.models.weights import load_weights

        try:
            model, model_cfg = load_weights(weights)
        except Exception as e:  # noqa: BLE001 - any failure to read weights stops start-up with one clear error
            raise ModelLoadError(
                f"cannot load weights {weights}: {e}. Re-train/re-download the file or point weights_path "
                "at a valid TDMI weights file."
            ) from e
        return model, model_cfg, f"weights {weights}"
    if not cfg.allow_random_weights:
        where = f"weights_path {weights} does not exist" if weights is not None else "weights_path is empty"
        raise ModelLoadError(
            f"no trained weights: {where}. Train a model (weights/tdmi_lite.pt) or set weights_path; "
            "for pipeline tests only, set allow_random_weights:=true to run a randomly initialised model."
        )
    try:
        model_cfg = load_model_config(
            str(cfg.resolve_path(cfg.model_config, base_dir)) if cfg.model_config.endswith((".yaml", ".yml"))
            else cfg.model_config
        )
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"invalid model_config {cfg.model_config!r}: {e}") from e
    torch.manual_seed(cfg.random_seed)
    model = build_model(model_cfg).eval()
    return model, model_cfg, f"RANDOM weights (model_config {model_cfg.name}, seed {cfg.random_seed})"


def build_estimator(cfg: PoseNodeConfig, base_dir: Path | None = None) -> tuple[Any, str]:
    """Load the model and wrap it in the runtime's backend and a ``StreamingPoseEstimator``.

    Returns:
        ``(estimator, description)`` — the description names the weights and backend for logs.

    Raises:
        ModelLoadError: missing/corrupt weights, bad model config, unavailable backend, or a
            ``delta`` that the model was not built for.
    """
    import torch

    from tdmi_core.runtime.config import RuntimeConfig, build_backend
    from tdmi_core.runtime.estimator import StreamingPoseEstimator

    if cfg.device == "cpu":
        torch.set_num_threads(cfg.num_threads)
    try:
        runtime = RuntimeConfig(
            model=cfg.model_config, weights=cfg.weights_path or None, allow_untrained=True, backend=cfg.backend,
            device=cfg.device, precision=cfg.precision, mode=cfg.estimator_mode, hold_threshold=cfg.hold_threshold,
            opt_batch=min(5, cfg.max_batch), max_batch=cfg.max_batch, cache_dir=cfg.cache_dir or None,
            num_threads=cfg.num_threads,
        )
    except ValueError as e:
        raise ModelLoadError(f"invalid runtime settings: {e}") from e
    model, model_cfg, what = _load_model(cfg, base_dir)
    if int(model_cfg.delta) != cfg.delta:
        raise ModelLoadError(
            f"delta={cfg.delta} but the model ({what}) is built for delta={model_cfg.delta}; set delta:={model_cfg.delta}"
        )
    try:
        backend = build_backend(runtime, model, model_cfg)
    except Exception as e:  # noqa: BLE001 - missing library, no GPU, failed export: one clear start-up error
        raise ModelLoadError(
            f"backend {cfg.backend!r} ({cfg.precision} on {cfg.device}) failed to start: {type(e).__name__}: {e}"
        ) from e
    estimator = StreamingPoseEstimator(
        backend, model_cfg, delta=cfg.delta, mode=cfg.estimator_mode, hold_threshold=cfg.hold_threshold,
        max_batch=cfg.max_batch,
    )
    return estimator, f"{what}, backend {getattr(backend, 'name', cfg.backend)}"
