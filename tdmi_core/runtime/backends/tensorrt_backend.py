"""Torch-TensorRT backend (CUDA): backbone and temporal head compiled with ``torch_tensorrt.dynamo.compile``.

Both halves are compiled AOT for a dynamic batch (min/opt/max) in FP16 (explicit typing: the module
and its inputs are cast to half, so every layer TensorRT can run runs in FP16) or FP32. Compiled
programs are saved as exported programs in an :class:`~tdmi_core.runtime.engine_cache.EngineCache`
keyed by weights hash + Torch-TensorRT/TensorRT/torch versions + GPU + precision + shapes, loaded on
later starts, and rebuilt only when a key field changes. Operators without a TensorRT converter
(e.g. torchvision's ``deform_conv2d`` in the TDE, unless a converter exists in the installed
version) stay in PyTorch inside the compiled graph (Torch-TensorRT's partitioning).

``torch_tensorrt`` is imported only when this backend is constructed.
"""
from __future__ import annotations

import inspect
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tdmi_core.models.export import HeatmapsOnly, input_shapes
from tdmi_core.runtime.engine_cache import EngineCache, EngineKey, model_fingerprint

_logger = logging.getLogger(__name__)

__all__ = ["TensorRTBackend", "import_torch_tensorrt", "tensorrt_environment"]

_DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


def import_torch_tensorrt() -> Any:
    """Import ``torch_tensorrt`` or raise ImportError saying how to get it."""
    try:
        import torch_tensorrt
    except ImportError as e:  # also raised when its TensorRT / CUDA libraries are missing
        raise ImportError(
            "backend 'tensorrt' needs torch_tensorrt (matching this torch) and a CUDA GPU: "
            "pip install torch-tensorrt, or use backend 'torch' with device 'cuda'"
        ) from e
    return torch_tensorrt


def tensorrt_environment(torch_tensorrt: Any, device: torch.device) -> dict[str, str]:
    """Version and GPU fields of the engine-cache key."""
    try:
        import tensorrt

        trt_version = tensorrt.__version__
    except ImportError:  # torch_tensorrt can bundle its runtime without the python package
        trt_version = "unknown"
    props = torch.cuda.get_device_properties(device)
    return {
        "compiler": f"torch_tensorrt-{torch_tensorrt.__version__}",
        "runtime": f"tensorrt-{trt_version}",
        "torch_version": torch.__version__,
        "device": f"{props.name} (sm_{props.major}{props.minor})",
    }


class TensorRTBackend:
    """Backbone and temporal head as Torch-TensorRT compiled programs with a dynamic batch.

    Args:
        model: TDMI model (its weights define the cache key).
        model_cfg: its config (input and feature shapes).
        device: CUDA device.
        precision: ``"fp16"`` (default) or ``"fp32"``.
        batch_range: (min, opt, max) batch of both programs; bigger batches are split by the caller.
        cache_dir: engine cache directory.
        rebuild: ignore cached programs and build again.
        warmup: run every batch size in ``[min, max]`` once after loading (first calls per shape
            are slow: context set-up, allocations).
        show_progress: show a progress bar over the build/load steps (tqdm) and, where the installed
            Torch-TensorRT offers it, TensorRT's builder progress.
        min_block_size: smallest run of TensorRT-convertible ops compiled into an engine.
        optimization_level: TensorRT builder optimisation level (0-5; None = TensorRT default).
    """

    def __init__(
        self,
        model: nn.Module,
        model_cfg: Any,
        device: str | torch.device = "cuda",
        precision: str = "fp16",
        batch_range: tuple[int, int, int] = (1, 5, 16),
        cache_dir: str | Path = "engines",
        rebuild: bool = False,
        warmup: bool = True,
        show_progress: bool = True,
        min_block_size: int = 3,
        optimization_level: int | None = None,
    ) -> None:
        torch_tensorrt = import_torch_tensorrt()
        self.device = torch.device(device)
        if self.device.type != "cuda" or not torch.cuda.is_available():
            raise RuntimeError("backend 'tensorrt' needs a CUDA device and torch.cuda.is_available()")
        if precision not in _DTYPES:
            raise ValueError(f"TensorRTBackend precision must be one of {tuple(_DTYPES)}, got {precision!r}")
        bmin, bopt, bmax = (int(v) for v in batch_range)
        if not 1 <= bmin <= bopt <= bmax:
            raise ValueError(f"batch_range must satisfy 1 <= min <= opt <= max, got {batch_range}")
        self.precision = precision
        self.input_dtype = _DTYPES[precision]
        self.max_batch = bmax
        self.batch_range = (bmin, bopt, bmax)
        self.name = f"tensorrt-{precision}"
        self._tt = torch_tensorrt
        self._min_block_size = min_block_size
        self._optimization_level = optimization_level
        self._show_progress = show_progress

        model = model.eval().to(self.device, self.input_dtype)
        model_hash = model_fingerprint(model, model_cfg)
        env = tensorrt_environment(torch_tensorrt, self.device)
        parts = {  # part -> (module, input shapes without batch)
            "backbone": (model.backbone, input_shapes(model, "backbone")),
            "head": (HeatmapsOnly(model.temporal_head).eval(), input_shapes(model, "temporal_head")),
        }
        cache = EngineCache(cache_dir, extension="ep")
        steps = [(part, what) for part in parts for what in ("load or build", "warm up")]
        progress = _progress(len(steps), show_progress, desc=f"TensorRT {model_cfg.name} {precision}")
        self._programs: dict[str, Any] = {}
        try:
            for part, (module, shapes) in parts.items():
                # the number of inputs in the key: programs of an older input layout are not reused
                key = EngineKey(
                    part=part,
                    model_hash=model_hash,
                    model_name=str(model_cfg.name),
                    precision=precision,
                    min_shape=(bmin, *shapes[0]),
                    opt_shape=(bopt, *shapes[0]),
                    max_shape=(bmax, *shapes[0]),
                    **{**env, "compiler": f"{env['compiler']}-inputs{len(shapes)}"},
                )
                progress.set_postfix_str(f"{part}: load or build")
                self._programs[part] = self._load_or_build(cache, key, module, shapes, rebuild)
                progress.update(1)
                progress.set_postfix_str(f"{part}: warm up")
                if warmup:
                    self._warmup(part, shapes)
                progress.update(1)
        finally:
            progress.close()
        _logger.info("TensorRTBackend ready: %s on %s", self.name, env["device"])

    def _inputs(self, module: nn.Module, shapes: tuple[tuple[int, ...], ...]) -> list[Any]:
        # Named like forward's parameters: torch_tensorrt.save(retrace=True) derives dynamic_shapes from them.
        names = list(inspect.signature(module.forward).parameters)
        bmin, bopt, bmax = self.batch_range
        return [
            self._tt.Input(
                min_shape=(bmin, *shape),
                opt_shape=(bopt, *shape),
                max_shape=(bmax, *shape),
                dtype=self.input_dtype,
                name=name,
            )
            for name, shape in zip(names, shapes)
        ]

    def _load_or_build(self, cache: EngineCache, key: EngineKey, module: nn.Module,
                       shapes: tuple[tuple[int, ...], ...], rebuild: bool) -> Any:
        path = None if rebuild else cache.lookup(key)
        if path is not None:
            _logger.info("loading cached TensorRT program %s", path)
            return self._tt.load(str(path)).module()
        inputs = self._inputs(module, shapes)
        _logger.info(
            "building TensorRT %s program for batch %s..%s (opt %s), %s: this takes minutes once per GPU/model",
            key.part, key.min_shape[0], key.max_shape[0], key.opt_shape[0], key.precision,
        )
        start = time.perf_counter()
        bmin, bmax = key.min_shape[0], key.max_shape[0]
        # torch.export specialises a size-1 example axis, so trace with batch >= 2 when the range allows.
        example_batch = min(max(2, key.opt_shape[0]), bmax)
        examples = tuple(torch.randn((example_batch, *shape), device=self.device, dtype=self.input_dtype)
                         for shape in shapes)
        batch = torch.export.Dim("batch", min=bmin, max=bmax)
        dynamic = None if bmin == bmax else tuple({0: batch} for _ in shapes)
        with self._builder_monitor():
            compiled = self._tt.dynamo.compile(
                torch.export.export(module, examples, dynamic_shapes=dynamic),
                arg_inputs=inputs,
                use_explicit_typing=True,  # the module and inputs carry the precision (FP16 weights and inputs)
                min_block_size=self._min_block_size,
                optimization_level=self._optimization_level,
            )
        _logger.info("built TensorRT %s program in %.0f s", key.part, time.perf_counter() - start)
        cache.store(
            key,
            lambda p: self._tt.save(compiled, str(p), output_format="exported_program", arg_inputs=inputs, retrace=True),
        )
        return compiled

    def _builder_monitor(self) -> Any:
        """TensorRT's own builder progress bars where this Torch-TensorRT version has them, else nothing."""
        import contextlib

        debugger = getattr(getattr(self._tt, "dynamo", None), "Debugger", None)
        if not self._show_progress or debugger is None:
            return contextlib.nullcontext()
        try:
            return debugger(log_level="warning", engine_builder_monitor=True)
        except TypeError:  # an older Debugger signature: skip the bars, keep building
            _logger.debug("this torch_tensorrt Debugger has no engine_builder_monitor option")
            return contextlib.nullcontext()

    @torch.inference_mode()
    def _warmup(self, part: str, shapes: tuple[tuple[int, ...], ...]) -> None:
        bmin, _, bmax = self.batch_range
        for b in range(bmin, bmax + 1):
            self._programs[part](*(torch.zeros((b, *shape), device=self.device, dtype=self.input_dtype) for shape in shapes))
        torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def backbone(self, crops: Tensor) -> Tensor:
        """``crops[B, 3, H, W]`` → ``features[B, S, C, H/4, W/4]`` on the GPU (B within the batch range)."""
        return self._programs["backbone"](crops.to(self.device, self.input_dtype).contiguous())

    @torch.inference_mode()
    def temporal_head(self, motion: Tensor, visual: Tensor) -> Tensor:
        """``motion[B, T, S, C, h', w']``, ``visual[B, V, C, h, w]`` → ``heatmaps[B, K, h, w]`` on the GPU."""
        return self._programs["head"](*(x.to(self.device, self.input_dtype).contiguous() for x in (motion, visual)))


class _NoProgress:
    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, s: str) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, show: bool, desc: str) -> Any:
    if not show:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step")
