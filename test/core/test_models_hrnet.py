"""HRNet backbone: parameter counts, official key layout, strict checkpoint loading, shapes."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from tdmi_core.models import MODEL_CONFIGS, build_model, count_parameters
from tdmi_core.models.configs import HRNetConfig
from tdmi_core.models.hrnet import HRNet
from tdmi_core.models.weights import WeightsError, load_hrnet_checkpoint

torch.set_num_threads(1)  # 2 shared cores: one OpenMP thread avoids oversubscription stalls


def _bn(prefix: str, ch: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (ch,), f"{prefix}.bias": (ch,), f"{prefix}.running_mean": (ch,),
            f"{prefix}.running_var": (ch,), f"{prefix}.num_batches_tracked": ()}


def official_pose_hrnet_layout(width: int, num_joints: int = 17) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the official COCO pose_hrnet.py state dict, written out independently of our module code.

    Official structure: 64-channel stem, layer1 = 4 Bottlenecks (64 planes, x4), stages 2/3/4 with
    1/4/3 modules of 4 BasicBlocks per branch, branch channels C*2**b, the last stage-4 module fusing
    only into branch 0, final 1x1 conv to the joints.
    """
    c = [width * 2**b for b in range(4)]
    keys: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 3, 3), "conv2.weight": (64, 64, 3, 3)}
    keys |= _bn("bn1", 64) | _bn("bn2", 64)
    for i in range(4):
        inp = 64 if i == 0 else 256
        p = f"layer1.{i}"
        keys |= {f"{p}.conv1.weight": (64, inp, 1, 1), f"{p}.conv2.weight": (64, 64, 3, 3)}
        keys |= {f"{p}.conv3.weight": (256, 64, 1, 1)}
        keys |= _bn(f"{p}.bn1", 64) | _bn(f"{p}.bn2", 64) | _bn(f"{p}.bn3", 256)
    keys |= {"layer1.0.downsample.0.weight": (256, 64, 1, 1)} | _bn("layer1.0.downsample.1", 256)
    # transitions: 256 -> C (same resolution), 256 -> 2C (stride 2); then only new branches.
    keys |= {"transition1.0.0.weight": (c[0], 256, 3, 3), "transition1.1.0.0.weight": (c[1], 256, 3, 3)}
    keys |= _bn("transition1.0.1", c[0]) | _bn("transition1.1.0.1", c[1])
    keys |= {"transition2.2.0.0.weight": (c[2], c[1], 3, 3)} | _bn("transition2.2.0.1", c[2])
    keys |= {"transition3.3.0.0.weight": (c[3], c[2], 3, 3)} | _bn("transition3.3.0.1", c[3])
    for stage, modules in ((2, 1), (3, 4), (4, 3)):
        nb = stage
        for m in range(modules):
            p = f"stage{stage}.{m}"
            for b in range(nb):
                for k in range(4):
                    q = f"{p}.branches.{b}.{k}"
                    keys |= {f"{q}.conv1.weight": (c[b], c[b], 3, 3), f"{q}.conv2.weight": (c[b], c[b], 3, 3)}
                    keys |= _bn(f"{q}.bn1", c[b]) | _bn(f"{q}.bn2", c[b])
            outs = 1 if (stage == 4 and m == modules - 1) else nb
            for i in range(outs):
                for j in range(nb):
                    q = f"{p}.fuse_layers.{i}.{j}"
                    if j > i:
                        keys |= {f"{q}.0.weight": (c[i], c[j], 1, 1)} | _bn(f"{q}.1", c[i])
                    elif j < i:
                        for k in range(i - j):
                            out = c[i] if k == i - j - 1 else c[j]
                            keys |= {f"{q}.{k}.0.weight": (out, c[j], 3, 3)} | _bn(f"{q}.{k}.1", out)
    keys |= {"final_layer.weight": (num_joints, c[0], 1, 1), "final_layer.bias": (num_joints,)}
    return keys


def _official_cfg(width: int) -> HRNetConfig:
    return HRNetConfig(width=width)


def _random_state(layout: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7, dtype=torch.long)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        else:
            out[k] = torch.randn(shape, generator=g) * 0.05
    return out


def test_w48_pose_parameter_count_is_official() -> None:
    # Reference count of the official HRNet-W48 COCO pose model (with its 17-joint final layer).
    assert count_parameters(HRNet(MODEL_CONFIGS["tdmi_w48_384x288"].hrnet_config())) == 63_595_745


def test_w32_and_lite_parameter_counts() -> None:
    w32 = count_parameters(HRNet(MODEL_CONFIGS["tdmi_w32_256x192"].hrnet_config()))
    assert 28_000_000 < w32 < 29_000_000  # HRNet-W32 is the "28.5M" model of the HRNet paper
    lite = count_parameters(build_model(MODEL_CONFIGS["tdmi_lite"]))
    assert lite < 3_000_000  # < 12 MB of fp32 weights: must stay small for a 2-core CPU


@pytest.mark.parametrize("width", [32, 48])
def test_state_dict_matches_official_layout(width: int) -> None:
    ours = {k: tuple(v.shape) for k, v in HRNet(_official_cfg(width)).state_dict().items()}
    assert ours == official_pose_hrnet_layout(width)


@pytest.mark.parametrize("wrap", ["plain", "module_prefix", "state_dict_wrapper", "no_num_batches_tracked"])
def test_strict_load_of_official_layout_checkpoint(tmp_path: Path, wrap: str) -> None:
    width = 8  # same key structure as W32/W48, small file
    state = _random_state(official_pose_hrnet_layout(width))
    saved: object = state
    if wrap == "module_prefix":
        saved = {"module." + k: v for k, v in state.items()}
    elif wrap == "state_dict_wrapper":
        saved = {"epoch": 140, "state_dict": state}
    elif wrap == "no_num_batches_tracked":
        saved = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "pose_hrnet_w8.pth"
    torch.save(saved, path)
    net = HRNet(_official_cfg(width))
    load_hrnet_checkpoint(net, path)
    loaded = net.state_dict()
    for k, v in state.items():
        if k.endswith("num_batches_tracked") and wrap == "no_num_batches_tracked":
            continue
        assert torch.equal(loaded[k], v), k


def test_load_into_tdmi_model_backbone(tmp_path: Path) -> None:
    cfg = dataclasses.replace(
        MODEL_CONFIGS["tdmi_w32_256x192"], width=8, input_size_hw=(64, 64), heatmap_size_hw=(16, 16)
    )
    model = build_model(cfg)
    state = _random_state(official_pose_hrnet_layout(8), seed=3)
    path = tmp_path / "ckpt.pth"
    torch.save(state, path)
    load_hrnet_checkpoint(model, path)
    assert torch.equal(model.backbone.final_layer.weight, state["final_layer.weight"])


def test_wrong_width_checkpoint_names_the_width(tmp_path: Path) -> None:
    path = tmp_path / "w16.pth"
    torch.save(_random_state(official_pose_hrnet_layout(16)), path)
    with pytest.raises(WeightsError, match="HRNet-W16"):
        load_hrnet_checkpoint(HRNet(_official_cfg(8)), path)


def test_missing_and_unexpected_keys_are_reported(tmp_path: Path) -> None:
    state = _random_state(official_pose_hrnet_layout(8))
    del state["stage3.1.branches.2.3.conv2.weight"]
    state["head.extra.weight"] = torch.zeros(3)
    path = tmp_path / "bad_keys.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"1 missing.*stage3\.1\.branches\.2\.3\.conv2\.weight.*1 unexpected"):
        load_hrnet_checkpoint(HRNet(_official_cfg(8)), path)


def test_corrupt_truncated_and_foreign_files(tmp_path: Path) -> None:
    net = HRNet(_official_cfg(8))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        load_hrnet_checkpoint(net, junk)
    good = tmp_path / "good.pth"
    torch.save(_random_state(official_pose_hrnet_layout(8)), good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError):
        load_hrnet_checkpoint(net, truncated)
    foreign = tmp_path / "foreign.pth"
    torch.save({"epoch": 3, "lr": 0.1}, foreign)
    with pytest.raises(WeightsError, match="expected a state dict|not a state dict"):
        load_hrnet_checkpoint(net, foreign)
    nan = _random_state(official_pose_hrnet_layout(8))
    nan["conv1.weight"][0, 0, 0, 0] = float("nan")
    nan_path = tmp_path / "nan.pth"
    torch.save(nan, nan_path)
    with pytest.raises(WeightsError, match="non-finite"):
        load_hrnet_checkpoint(net, nan_path)
    with pytest.raises(FileNotFoundError):
        load_hrnet_checkpoint(net, tmp_path / "absent.pth")


class _Foreign:
    """An arbitrary class: weights_only loading must refuse to unpickle it."""


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickle.pth"
    torch.save({"state_dict": _random_state(official_pose_hrnet_layout(8)), "obj": _Foreign()}, path)
    with pytest.raises(WeightsError, match="weights_only"):
        load_hrnet_checkpoint(HRNet(_official_cfg(8)), path)


def test_stage_feature_shapes_and_heatmaps() -> None:
    net = HRNet(HRNetConfig(width=8)).eval()
    x = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        feats = net(x)
        heat = net.forward_heatmaps(x)
        stages = net.stage_features(x)
    assert feats.shape == (2, 4, 8, 32, 24)
    assert heat.shape == (2, 17, 32, 24)
    for s in range(4):
        assert torch.equal(feats[:, s], stages[s])
    # final_layer works on the last stage feature: the single-frame HRNet path.
    torch.testing.assert_close(heat, net.final_layer(feats[:, -1]))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        net(torch.randn(2, 1, 128, 96))


def test_w48_forward_shape_at_paper_resolution() -> None:
    cfg = MODEL_CONFIGS["tdmi_w48_384x288"]
    net = HRNet(cfg.hrnet_config()).eval()
    with torch.no_grad():
        feats = net(torch.randn(1, 3, *cfg.input_size_hw))
    assert feats.shape == (1, 4, 48, 96, 72)
    assert torch.isfinite(feats).all()
