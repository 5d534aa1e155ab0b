"""Export round trips: torch.export (dynamic batch) and ONNX opset 19 (DeformConv) vs eager."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tdmi_core.models import build_model, load_model_config
from tdmi_core.models.export import (
    IO_NAMES,
    ONNX_OPSET,
    HeatmapsOnly,
    example_input,
    export_all_onnx,
    export_onnx,
    export_part,
)
from tdmi_core.models.tde import ModulatedDeformConv2d

torch.set_num_threads(1)  # 2 shared cores: one OpenMP thread avoids oversubscription stalls
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _scaled_random_model(head: str = "tdmi", tde_stride: int = 1):
    """Lite architecture at 64x64 with O(1) activations and large DCN offsets, so mismatches show."""
    torch.manual_seed(0)
    cfg = load_model_config("tdmi_lite", input_size_hw=(64, 64), heatmap_size_hw=(16, 16), head=head,
                            tde_stride=tde_stride)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        for om in model.temporal_head.tde.offset_mask:
            om.conv.weight.normal_(std=0.02)
            om.conv.bias.normal_(std=1.5)  # offsets of ~1.5 px, masks away from 0.5
    return model


def _eager(model, part: str, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    with torch.no_grad():
        return model.backbone(*inputs) if part == "backbone" else model.temporal_head.forward_split(*inputs)


def _close(got: np.ndarray | torch.Tensor, want: torch.Tensor, rel: float) -> None:
    got = torch.as_tensor(np.asarray(got))
    scale = want.abs().max().item()
    assert scale > 1e-2, "activations too small for a meaningful comparison"
    assert got.shape == want.shape
    err = (got - want).abs().max().item()
    assert err <= rel * scale, f"max abs error {err} vs scale {scale}"


@pytest.fixture(scope="module")
def model():
    return _scaled_random_model()


@pytest.fixture(scope="module")
def onnx_files(model, tmp_path_factory) -> dict[str, Path]:
    return export_all_onnx(model, tmp_path_factory.mktemp("onnx"))


@pytest.mark.parametrize("part", ["backbone", "temporal_head"])
def test_torch_export_dynamic_batch_round_trip(model, part: str) -> None:
    program = export_part(model, part)
    module = program.module()
    for batch in (1, 3, 6):
        x = example_input(model, part, batch)
        _close(module(*x).detach(), _eager(model, part, x), rel=1e-5)


def test_export_rejects_batch_one_example(model) -> None:
    with pytest.raises(ValueError, match="example_batch"):
        export_part(model, "backbone", example_batch=1)


@pytest.mark.parametrize("part", ["backbone", "temporal_head"])
def test_onnx_round_trip_on_onnxruntime(model, onnx_files, part: str) -> None:
    path = onnx_files[part]
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == ONNX_OPSET
    assert [i.name for i in proto.graph.input] == list(IO_NAMES[part][0])
    assert [o.name for o in proto.graph.output] == [IO_NAMES[part][1]]
    n_deform = sum(node.op_type == "DeformConv" for node in proto.graph.node)
    assert n_deform == (4 if part == "temporal_head" else 0)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 4):
        x = example_input(model, part, batch)
        got = session.run(None, {name: t.numpy() for name, t in zip(IO_NAMES[part][0], x)})[0]
        _close(got, _eager(model, part, x), rel=1e-4)


def test_onnx_deform_conv_layout_matches_torchvision(tmp_path: Path) -> None:
    """A lone DCNv2 layer with large offsets and groups: catches any (dy, dx) or mask/bias mix-up."""
    torch.manual_seed(1)

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dcn = ModulatedDeformConv2d(8, 6)
            nn.init.normal_(self.dcn.bias)

        def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.dcn(x, offset, mask)

    layer = Layer().eval()
    x, offset, mask = torch.randn(2, 8, 9, 7), 3 * torch.randn(2, 18, 9, 7), torch.rand(2, 9, 9, 7)
    from tdmi_core.models.export import onnx_translation_table

    program = torch.export.export(layer, (x, offset, mask))
    onnx_program = torch.onnx.export(
        program, f=None, opset_version=ONNX_OPSET, dynamo=True, custom_translation_table=onnx_translation_table()
    )
    path = tmp_path / "dcn.onnx"
    onnx_program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, dict(zip(names, (x.numpy(), offset.numpy(), mask.numpy()))))[0]
    with torch.no_grad():
        want = layer(x, offset, mask)
    _close(got, want, rel=1e-5)
    # Swapping dy/dx gives a different answer, so the check above is sensitive to the layout.
    swapped = offset.view(2, 9, 2, 9, 7).flip(2).reshape(2, 18, 9, 7)
    with torch.no_grad():
        assert (layer(x, swapped, mask) - want).abs().max() > 0.1


@pytest.mark.parametrize("head, tde_stride", [("tdmi_st", 1), ("tdmi", 2)])
def test_other_temporal_heads_export(tmp_path: Path, head: str, tde_stride: int) -> None:
    model = _scaled_random_model(head=head, tde_stride=tde_stride)
    path = export_onnx(model, "temporal_head", tmp_path / "head.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = example_input(model, "temporal_head", 2)
    feeds = {name: t.numpy() for name, t in zip(("motion", "visual"), x)}
    _close(session.run(None, feeds)[0], _eager(model, "temporal_head", x), rel=1e-4)


@pytest.mark.parametrize("head, tde_stride", [("tdmi", 1), ("tdmi", 2), ("tdmi_st", 1), ("tdmi_st", 2)])
def test_split_inputs_give_the_whole_window_heatmaps(head: str, tde_stride: int) -> None:
    """What runtimes run (pooled stage features + the visual frames' final stage) equals the head on the window."""
    model = _scaled_random_model(head=head, tde_stride=tde_stride)
    window = torch.randn(2, model.cfg.num_frames, 4, model.cfg.width, 16, 16)
    motion, visual = model.temporal_head.split_inputs(window)
    assert motion.shape[-2:] == (16 // tde_stride, 16 // tde_stride)
    assert visual.shape[1] == (model.cfg.num_frames if head == "tdmi_st" else 1)
    with torch.no_grad():
        torch.testing.assert_close(HeatmapsOnly(model.temporal_head)(motion, visual), model.temporal_head(window))


def test_export_traces_torchvision_dcn_whatever_the_impl(model, tmp_path: Path) -> None:
    from tdmi_core.models.tde import set_deform_conv_impl

    set_deform_conv_impl(model, "grid_sample")
    try:
        program = export_part(model, "temporal_head")
        targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
        assert any("deform_conv2d" in t for t in targets)
        assert not any("grid_sampler" in t for t in targets)
        assert all(m.impl == "grid_sample" for m in model.temporal_head.tde.modulation)  # restored
    finally:
        set_deform_conv_impl(model, "torchvision")
