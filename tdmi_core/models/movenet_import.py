"""Import MoveNet Lightning (single-person) weights from its ONNX file into :class:`MoveNetBackbone`.

The ONNX file is the tfjs graph converted by ``scripts/convert_movenet.sh movenet-lightning``
(TensorFlow op names survive the conversion; batch norms are folded into conv biases). Convs are
matched by the TensorFlow layer name in their output; depthwise convs were renamed ``Conv__N`` by
tf2onnx, so they are found as the conv that feeds the named ``block_N_depthwise`` ReLU6.

Used once by the maintainer to build the pretrained backbone (``python -m
tdmi_core.models.movenet_import --onnx movenet_lightning.onnx --out ...``); the trained TDMI
weights files carry the result, so nothing here runs at serving time.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import torch

from tdmi_core.models.movenet import MoveNetBackbone

_FPN_NAMES = {  # our module -> the TF layer name in the conv's output
    "fpn_top": "model_1/conv2d/BiasAdd",
    "lateral16": "model_1/conv2d_1/BiasAdd",
    "lateral8": "model_1/conv2d_2/BiasAdd",
    "lateral4": "model_1/conv2d_3/BiasAdd",
    "smooth16.0": "model_1/separable_conv2d/separable_conv2d/depthwise",
    "smooth16.1": "model_1/re_lu/Relu/BiasAdd",
    "smooth8.0": "model_1/separable_conv2d_1/separable_conv2d/depthwise",
    "smooth8.1": "model_1/re_lu_1/Relu/BiasAdd",
    "smooth4.0": "model_1/separable_conv2d_2/separable_conv2d/depthwise",
    "smooth4.1": "model_1/re_lu_2/Relu/BiasAdd",
    "keypoint_head.hidden.0": "kpt_heatmap_0/separable_conv2d_4/separable_conv2d/depthwise",
    "keypoint_head.hidden.1": "kpt_heatmap_0/re_lu_4/Relu/BiasAdd",
    "keypoint_head.out": "kpt_heatmap_0/conv2d_5/BiasAdd",
    "stem": "model/Conv1_relu/Relu6/BiasAdd",
    "top": "model/out_relu/Relu6/BiasAdd",
}


def _block_names(index: int) -> dict[str, str]:
    """TF names of MobileNetV2 block ``index`` (block 0 is Keras' ``expanded_conv``)."""
    prefix = "expanded_conv" if index == 0 else f"block_{index}"
    names = {f"blocks.{index}.project": f"model/{prefix}_project_BN/"}
    if index > 0:
        names[f"blocks.{index}.expand"] = f"model/{prefix}_expand_relu/"
    return names


def read_onnx_convs(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """``{our module name: (weight, bias or None)}`` for every conv of MoveNetBackbone, from the ONNX file."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]

    def params(node) -> tuple[np.ndarray, np.ndarray | None]:
        bias = inits[node.input[2]] if len(node.input) > 2 else None
        return inits[node.input[1]], bias

    wanted = dict(_FPN_NAMES)
    for i in range(17):
        wanted.update(_block_names(i))
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for ours, tf_name in wanted.items():
        hits = [n for n in convs if tf_name in n.output[0]]
        if len(hits) != 1:
            raise ValueError(f"{path}: expected one conv named like {tf_name!r} for {ours}, found {len(hits)}")
        out[ours] = params(hits[0])
    # Depthwise convs: the conv whose output the block's depthwise ReLU6 (a Clip) reads.
    for i in range(17):
        prefix = "expanded_conv" if i == 0 else f"block_{i}"
        clips = [n for n in graph.node if n.op_type == "Clip" and re.search(rf"/{prefix}_depthwise/", n.output[0])]
        if len(clips) != 1:
            raise ValueError(f"{path}: no unique depthwise ReLU6 for {prefix}")
        out[f"blocks.{i}.depthwise"] = params(producers[clips[0].input[0]])
    return out


def load_movenet_onnx(backbone: MoveNetBackbone, path: str | Path) -> None:
    """Copy every pretrained conv of the ONNX file into ``backbone`` (shapes checked).

    ``stage3_project`` (ours, not MoveNet's) starts as the FPN's own stride-8 pointwise conv
    (32 -> 24), which reads the up-sampled stride-16 feature in MoveNet.
    """
    convs = read_onnx_convs(path)
    modules = dict(backbone.named_modules())
    for name, (weight, bias) in convs.items():
        _copy(modules[name], weight, bias, name)
    pointwise = backbone.smooth8[1]
    backbone.stage3_project.weight.data.copy_(pointwise.weight.data)
    backbone.stage3_project.bias.data.copy_(pointwise.bias.data)


def _copy(module: torch.nn.Module, weight: np.ndarray, bias: np.ndarray | None, name: str) -> None:
    if tuple(module.weight.shape) != weight.shape:
        raise ValueError(f"{name}: ONNX weight {weight.shape} does not fit {tuple(module.weight.shape)}")
    module.weight.data.copy_(torch.from_numpy(weight.copy()))
    if bias is not None:
        if module.bias is None:
            raise ValueError(f"{name}: ONNX conv has a bias, ours does not")
        module.bias.data.copy_(torch.from_numpy(bias.copy()))
    elif module.bias is not None:
        raise ValueError(f"{name}: ours has a bias the ONNX conv lacks")


def main(argv: list[str] | None = None) -> None:
    """Write the pretrained backbone's state dict (for building a TDMI model around it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", required=True, help="movenet_lightning.onnx (single-person)")
    parser.add_argument("--out", required=True, help="output .pt state dict")
    args = parser.parse_args(argv)
    backbone = MoveNetBackbone()
    load_movenet_onnx(backbone, args.onnx)
    torch.save(backbone.state_dict(), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
