"""ONNX Runtime backend (CPU): backbone and temporal head exported to ONNX with a dynamic batch.

The exported files are cached (:class:`~tdmi_core.runtime.engine_cache.EngineCache`, keyed by the
weights' hash, torch/opset and onnxruntime versions) and each export is checked against eager
torch on a random batch before use. The TDE's DCNv2 (``torchvision.ops.deform_conv2d``) is exported
as the standard ONNX ``DeformConv`` (opset 19), which ONNX Runtime's CPU provider implements.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from tdmi_core.models.export import IO_NAMES, ONNX_OPSET, HeatmapsOnly, export_onnx, input_shapes
from tdmi_core.runtime.engine_cache import EngineCache, EngineKey, model_fingerprint

_logger = logging.getLogger(__name__)

__all__ = ["OnnxRuntimeBackend"]

class OnnxRuntimeBackend:
    """Backbone and temporal head as ONNX Runtime CPU sessions.

    Args:
        model: the TDMI model (fp32; moved to CPU for export).
        model_cfg: its config (input and feature shapes).
        cache_dir: where exported ``.onnx`` files are cached.
        num_threads: ONNX Runtime intra-op threads (None = library default).
        max_batch: optional cap on one call's batch.
        check_atol: max allowed |ONNX Runtime - torch| on the export check (relative to output scale).
    """

    def __init__(
        self,
        model: nn.Module,
        model_cfg: Any,
        cache_dir: str | Path,
        num_threads: int | None = None,
        max_batch: int | None = None,
        check_atol: float = 1e-3,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ImportError("OnnxRuntimeBackend needs onnxruntime: pip install onnxruntime") from e
        self.device = torch.device("cpu")
        self.input_dtype = torch.float32
        self.max_batch = max_batch
        self.name = "onnxruntime-cpu-fp32"
        model = model.eval().to("cpu", torch.float32)
        cache = EngineCache(cache_dir, extension="onnx")
        model_hash = model_fingerprint(model, model_cfg)
        parts = {  # our part name -> (model part, eager module for the check, input shapes without batch)
            "backbone": ("backbone", model.backbone, input_shapes(model, "backbone")),
            "head": ("temporal_head", HeatmapsOnly(model.temporal_head), input_shapes(model, "temporal_head")),
        }
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        self._sessions: dict[str, Any] = {}
        self._io: dict[str, tuple[tuple[str, ...], str]] = {}
        for part, (model_part, module, shapes) in parts.items():
            in_names, out_name = IO_NAMES[model_part]
            key = EngineKey(
                part=part,
                model_hash=model_hash,
                model_name=str(model_cfg.name),
                # the inputs' names: files of an older input layout are not reused
                compiler=f"torch.onnx-dynamo-opset{ONNX_OPSET}-inputs-{'+'.join(in_names)}",
                runtime=f"onnxruntime-{ort.__version__}",
                torch_version=torch.__version__,
                device="cpu",
                precision="fp32",
                # the ONNX file has a free batch axis, so the batch is not part of the key
                min_shape=(1, *shapes[0]),
                opt_shape=(1, *shapes[0]),
                max_shape=(1, *shapes[0]),
            )
            path = cache.lookup(key)
            if path is None:
                # Random inputs for the head too: an untrained backbone gives near-constant features,
                # whose frame differences (~1e-8) would make the check compare rounding noise.
                examples = tuple(torch.randn(2, *shape) for shape in shapes)
                _logger.info("exporting %s %s to ONNX (opset %d)", model_cfg.name, part, ONNX_OPSET)
                path = cache.store(key, lambda p, mp=model_part: export_onnx(model, mp, p))
                self._check(ort, options, path, module, examples, in_names, check_atol)
            self._sessions[part] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._io[part] = (in_names, out_name)
        _logger.info("OnnxRuntimeBackend ready (%s)", model_cfg.name)

    @staticmethod
    def _check(ort: Any, options: Any, path: Path, module: nn.Module, examples: tuple[Tensor, ...],
               in_names: tuple[str, ...], atol: float) -> None:
        """Compare the exported file with eager torch; delete it and raise if they disagree."""
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        got = session.run(None, {name: x.numpy() for name, x in zip(in_names, examples)})[0]
        with torch.inference_mode():
            want = module(*examples).numpy()
        err = float(np.abs(got - want).max())
        scale = float(np.abs(want).max()) + 1e-6
        if not err <= atol * max(scale, 1.0):
            path.unlink(missing_ok=True)
            raise RuntimeError(
                f"ONNX export of {path.name} disagrees with torch (max |diff| {err:.3g}, output scale {scale:.3g}); "
                "use backend 'torch' and report the model change that broke the export"
            )
        _logger.info("ONNX export %s matches torch (max |diff| %.2e)", path.name, err)

    def _run(self, part: str, *inputs: Tensor) -> Tensor:
        in_names, _ = self._io[part]
        feeds = {name: x.detach().to("cpu", torch.float32).contiguous().numpy() for name, x in zip(in_names, inputs)}
        return torch.from_numpy(self._sessions[part].run(None, feeds)[0])

    def backbone(self, crops: Tensor) -> Tensor:
        """``crops[B, 3, H, W]`` → ``features[B, S, C, H/4, W/4]`` (CPU fp32)."""
        return self._run("backbone", crops)

    def temporal_head(self, motion: Tensor, visual: Tensor) -> Tensor:
        """``motion[B, T, S, C, h', w']``, ``visual[B, V, C, h, w]`` → ``heatmaps[B, K, h, w]`` (CPU fp32)."""
        return self._run("head", motion, visual)
