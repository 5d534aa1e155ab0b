"""Inference backends behind one Protocol, and the one table that names them.

:data:`BACKENDS` maps each name to where it runs, the optional library it needs and how to build
it. The runtime config validates against it, :func:`build_backend` builds from it, and the
benchmark and the tools ask it what can run here: a new backend is one entry. Heavy libraries
(onnxruntime, torch_tensorrt) are imported only when their backend is built.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from tdmi_core.runtime.backends.base import PRECISIONS, Backend

if TYPE_CHECKING:  # type hints only: the config module imports this table
    from tdmi_core.runtime.config import RuntimeConfig

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "BackendSpec", "build_backend", "unavailable_reason"]


@dataclass(frozen=True)
class BackendSpec:
    """One inference backend.

    Attributes:
        devices: device types it runs on (``"cpu"``, ``"cuda"``).
        library: module it needs beyond torch (None: torch only).
        build: ``build(cfg, model, model_cfg)`` → the ready :class:`Backend`.
    """

    devices: tuple[str, ...]
    library: str | None
    build: Callable[[RuntimeConfig, torch.nn.Module, Any], Backend]


def _torch(cfg: RuntimeConfig, model: torch.nn.Module, model_cfg: Any) -> Backend:
    from tdmi_core.runtime.backends.torch_backend import TorchBackend

    return TorchBackend(model, device=cfg.device, precision=cfg.precision, max_batch=cfg.max_batch)


def _onnxruntime(cfg: RuntimeConfig, model: torch.nn.Module, model_cfg: Any) -> Backend:
    from tdmi_core.runtime.backends.onnx_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model, model_cfg, cache_dir=cfg.cache_path() / "onnx",
                              num_threads=cfg.num_threads or None, max_batch=cfg.max_batch)


def _tensorrt(cfg: RuntimeConfig, model: torch.nn.Module, model_cfg: Any) -> Backend:
    from tdmi_core.runtime.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(model, model_cfg, device=cfg.device, precision=cfg.precision,
                           batch_range=(cfg.min_batch, cfg.opt_batch, cfg.max_batch),
                           cache_dir=cfg.cache_path() / "engines")


BACKENDS: dict[str, BackendSpec] = {
    "torch": BackendSpec(devices=("cpu", "cuda"), library=None, build=_torch),
    "onnxruntime": BackendSpec(devices=("cpu",), library="onnxruntime", build=_onnxruntime),
    "tensorrt": BackendSpec(devices=("cuda",), library="torch_tensorrt", build=_tensorrt),
}


def build_backend(cfg: RuntimeConfig, model: torch.nn.Module, model_cfg: Any) -> Backend:
    """The backend ``cfg.backend`` around ``model`` (``cfg.num_threads`` > 0 also sets torch's CPU threads)."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    return BACKENDS[cfg.backend].build(cfg, model, model_cfg)


def unavailable_reason(name: str, device: str = "cpu") -> str | None:
    """Why backend ``name`` cannot run on ``device`` on this machine, or None when it can."""
    spec = BACKENDS.get(name)
    if spec is None:
        return f"unknown backend {name!r}; choose from {sorted(BACKENDS)}"
    device_type = torch.device(device).type
    if device_type not in spec.devices:
        return f"backend {name!r} runs on {'/'.join(spec.devices)}, not {device!r}"
    if device_type == "cuda" and not torch.cuda.is_available():
        return "no CUDA device"
    if spec.library is not None and importlib.util.find_spec(spec.library) is None:
        return f"{spec.library} is not installed"
    return None
