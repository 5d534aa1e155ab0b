"""Export the two TDMI parts (backbone, temporal head) with a dynamic batch dimension.

* :func:`export_part` -- ``torch.export`` program of ``model.backbone`` (``crops[B, 3, H, W]``) or
  the temporal head on its split inputs (``motion[B, T, 4, C, h/s, w/s]``, the TDE's pooled stage
  features, and ``visual[B, V, C, h, w]``, final-stage features of the frames the visual feature
  reads -> ``heatmaps``; ``TemporalHead.split_inputs``), batch B dynamic.
* :func:`export_onnx` -- the same as an ONNX file (opset 19); ``torchvision::deform_conv2d``
  becomes the standard ``DeformConv`` operator through :func:`deform_conv2d_to_onnx`.
* :func:`export_all_onnx` -- both parts into a directory, names as :data:`ONNX_FILE_NAMES`.

Input/output names are fixed (:data:`IO_NAMES`: input names, output name) so runtimes can bind by name.
``onnxscript`` (the dynamo ONNX exporter's dependency) is imported only when exporting to ONNX.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import torch
from torch import Tensor, nn

from tdmi_core.models.configs import NUM_STAGES
from tdmi_core.models.tdmi import TDMI
from tdmi_core.models.tde import ModulatedDeformConv2d

_logger = logging.getLogger(__name__)

Part = Literal["backbone", "temporal_head"]
PARTS: tuple[Part, ...] = ("backbone", "temporal_head")
IO_NAMES: dict[str, tuple[tuple[str, ...], str]] = {
    "backbone": (("crops",), "features"),
    "temporal_head": (("motion", "visual"), "heatmaps"),
}
ONNX_FILE_NAMES: dict[str, str] = {"backbone": "backbone.onnx", "temporal_head": "temporal_head.onnx"}
ONNX_OPSET = 19  # first opset with DeformConv
MAX_BATCH = 4096


class HeatmapsOnly(nn.Module):
    """The temporal head on its split inputs, heatmaps out (no ``return_aux`` flag)."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, motion: Tensor, visual: Tensor) -> Tensor:
        return self.head.forward_split(motion, visual)


def input_shapes(model: TDMI, part: Part) -> tuple[tuple[int, ...], ...]:
    """The shapes of ``part``'s inputs without the batch axis (in :data:`IO_NAMES` order)."""
    cfg = model.cfg
    if part == "backbone":
        return ((3, *cfg.input_size_hw),)
    if part == "temporal_head":
        h, w = cfg.heatmap_size_hw
        s = cfg.tde_stride
        return ((cfg.num_frames, NUM_STAGES, cfg.width, h // s, w // s),
                (len(model.temporal_head.visual_frames), cfg.width, h, w))
    raise ValueError(f"part must be one of {PARTS}, got {part!r}")


def example_input(model: TDMI, part: Part, batch: int = 2) -> tuple[Tensor, ...]:
    """Random inputs of the right shapes for ``part`` (``batch`` >= 2 keeps the batch symbolic)."""
    return tuple(torch.randn(batch, *shape) for shape in input_shapes(model, part))


def _module(model: TDMI, part: Part) -> nn.Module:
    if part == "backbone":
        return model.backbone
    if part == "temporal_head":
        return HeatmapsOnly(model.temporal_head)
    raise ValueError(f"part must be one of {PARTS}, got {part!r}")


def _dynamic_batch(num_inputs: int) -> tuple[dict[int, Any], ...]:
    # min=1: one person is the common case at run time even though the example uses 2.
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    return tuple({0: batch} for _ in range(num_inputs))


@contextmanager
def _torchvision_deform_conv(model: nn.Module) -> Iterator[None]:
    """Trace DCN layers as ``torchvision::deform_conv2d`` (-> ONNX DeformConv), restoring each layer's impl."""
    layers = [m for m in model.modules() if isinstance(m, ModulatedDeformConv2d)]
    saved = [m.impl for m in layers]
    for m in layers:
        m.impl = "torchvision"
    try:
        yield
    finally:
        for m, impl in zip(layers, saved):
            m.impl = impl


def export_part(model: TDMI, part: Part, example_batch: int = 2) -> torch.export.ExportedProgram:
    """``torch.export`` one part of ``model`` (eval mode) with a dynamic batch dimension.

    Returns:
        The exported program; ``program.module()(x)`` equals ``model.backbone(x)`` /
        ``model.temporal_head.forward_split(motion, visual)`` for any batch size in [1, 4096]. DCN
        layers are traced as ``torchvision::deform_conv2d`` whatever their ``impl`` (same numbers;
        maps to ONNX DeformConv).
    """
    if example_batch < 2:
        raise ValueError("example_batch must be >= 2 (torch.export specialises a batch of 1)")
    model = model.eval()
    module = _module(model, part)
    inputs = example_input(model, part, example_batch)
    with torch.no_grad(), _torchvision_deform_conv(model):
        return torch.export.export(module, inputs, dynamic_shapes=_dynamic_batch(len(inputs)), strict=False)


def deform_conv2d_to_onnx(
    input: Any,
    weight: Any,
    offset: Any,
    mask: Any,
    bias: Any,
    stride_h: int,
    stride_w: int,
    pad_h: int,
    pad_w: int,
    dilation_h: int,
    dilation_w: int,
    groups: int,
    offset_groups: int,
    use_mask: bool,
) -> Any:
    """Translate ``torchvision::deform_conv2d`` to ONNX ``DeformConv`` (opset 19).

    Both use offsets laid out as (dy, dx) pairs per kernel position and offset group; ONNX takes
    inputs in the order X, W, offset, B, mask.
    """
    from onnxscript import opset19 as op  # lazy: only needed when exporting to ONNX

    if not use_mask:
        raise NotImplementedError("TDMI always passes a DCNv2 mask; deform_conv2d without mask is not exported")
    return op.DeformConv(
        input,
        weight,
        offset,
        bias,
        mask,
        dilations=[dilation_h, dilation_w],
        group=groups,
        offset_group=offset_groups,
        pads=[pad_h, pad_w, pad_h, pad_w],
        strides=[stride_h, stride_w],
    )


def onnx_translation_table() -> dict[Callable[..., Any], Callable[..., Any]]:
    """Custom translations the dynamo ONNX exporter needs for TDMI."""
    import torchvision  # noqa: F401 -- registers torch.ops.torchvision

    return {torch.ops.torchvision.deform_conv2d.default: deform_conv2d_to_onnx}


def export_onnx(model: TDMI, part: Part, path: str | Path, example_batch: int = 2) -> Path:
    """Write ``part`` of ``model`` as an ONNX file (opset 19, dynamic batch, weights inline).

    Raises:
        ImportError: ``onnxscript`` is missing (install it: it is the exporter's dependency).
    """
    try:
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ImportError("ONNX export needs onnxscript: pip install onnxscript (see requirements/core.txt)") from e
    program = export_part(model, part, example_batch)
    in_names, out_name = IO_NAMES[part]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx_program = torch.onnx.export(
        program,
        f=None,
        input_names=list(in_names),
        output_names=[out_name],
        opset_version=ONNX_OPSET,
        dynamo=True,
        custom_translation_table=onnx_translation_table(),
        optimize=True,
        verbose=False,
    )
    assert onnx_program is not None
    onnx_program.save(str(path), external_data=False)
    _logger.info("exported %s of %s to %s", part, model.cfg.name, path)
    return path


def export_all_onnx(model: TDMI, out_dir: str | Path) -> dict[str, Path]:
    """Both parts as ``out_dir/backbone.onnx`` and ``out_dir/temporal_head.onnx``."""
    out_dir = Path(out_dir)
    return {part: export_onnx(model, part, out_dir / ONNX_FILE_NAMES[part]) for part in PARTS}
