"""Model configuration: one frozen schema for every TDMI variant, validated on construction.

A :class:`ModelConfig` describes the whole network (HRNet backbone, Temporal Difference Encoder,
Representation Disentanglement Module, head). Named variants live in :data:`MODEL_CONFIGS`; the
same variants ship as YAML files under ``config/models/`` and :func:`load_model_config` reads
either a name or a YAML path, applies keyword overrides with :func:`dataclasses.replace` and
validates the result. Each sub-network takes its own small config (:class:`HRNetConfig`,
:class:`TDEConfig`), derived from the flat model config so YAML files and overrides stay flat.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from tdmi_core.config_io import check_known_fields, read_yaml_mapping
from tdmi_core.skeleton import NUM_KEYPOINTS

_logger = logging.getLogger(__name__)

HEAD_KINDS: tuple[str, ...] = ("tdmi", "tdmi_st")
WINDOWS: tuple[str, ...] = ("symmetric", "causal")
BACKBONES: tuple[str, ...] = ("hrnet", "movenet")
HEATMAP_ACTIVATIONS: tuple[str, ...] = ("none", "sigmoid")
DECODE_REFINES: tuple[str, ...] = ("quarter", "dark")
MOVENET_WIDTH: int = 24  # channels of MoveNet's stride-4 FPN feature
NUM_STAGES: int = 4  # HRNet has 4 stages; the TDE consumes one 1/4-resolution feature per stage
FEATURE_STRIDE: int = 4  # stage features and heatmaps are at 1/4 of the input crop
INPUT_DIVISOR: int = 32  # the 4th HRNet branch runs at 1/32; sizes must divide for exact up-sampling


@dataclass(frozen=True)
class HRNetConfig:
    """Architecture of the HRNet pose backbone (names as in the official ``pose_hrnet.py``).

    ``width`` is C, the channels of the highest-resolution branch; branch b has C * 2**b channels.
    The official COCO models are ``stem_channels=64, layer1_planes=64, layer1_blocks=4,
    stage_modules=(1, 4, 3), stage_blocks=(4, 4, 4), final_conv_kernel=1``.
    """

    width: int = 48
    stem_channels: int = 64
    layer1_planes: int = 64
    layer1_blocks: int = 4
    stage_modules: tuple[int, int, int] = (1, 4, 3)
    stage_blocks: tuple[int, int, int] = (4, 4, 4)
    num_joints: int = NUM_KEYPOINTS
    final_conv_kernel: int = 1


@dataclass(frozen=True)
class TDEConfig:
    """Temporal Difference Encoder: Eq. 2 residual blocks per stage, Eq. 5 accumulation convs."""

    channels: int = 48
    num_frames: int = 5
    res_blocks: tuple[int, int, int, int] = (3, 3, 2, 2)
    offset_res_blocks: int = 1
    accum_convs: int = 1
    deform_groups: int = 1
    stride: int = 1


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a TDMI network; flat so YAML files and overrides stay simple.

    Attributes:
        name: variant name (also the YAML file stem under ``config/models/``).
        backbone: "hrnet" (the paper's) or "movenet" (MoveNet Lightning's MobileNetV2-FPN, the fast CPU
            default; ``width`` must then be 24, see :mod:`tdmi_core.models.movenet`).
        width: HRNet width C; every TDMI feature (stage features, M, M_u, M_n) has C channels.
        stem_channels, layer1_planes, layer1_blocks, stage_modules, stage_blocks: HRNet depth knobs.
        input_size_hw: crop size (H, W) in pixels, multiples of 32.
        heatmap_size_hw: heatmap size (H/4, W/4).
        num_keypoints: K heatmaps (COCO-17).
        delta: temporal span; the window has 2*delta+1 frames.
        window: "symmetric" (the paper: t-delta .. t+delta, key frame in the middle, output lags by
            delta frames) or "causal" (t-2*delta .. t, key frame last: no look-ahead, no lag).
        tde_res_blocks: residual blocks per stage in Eq. 2 (paper: 3, 3, 2, 2).
        tde_offset_res_blocks: residual blocks before the offset / mask convolution of Eq. 3 (paper:
            "residual blocks -> convolution"; 0 = a single conv on D^j, the layout of weights saved
            before this field existed).
        tde_stride: the TDE runs on stage features average-pooled by this factor and its output is
            up-sampled back (1 = the paper; 2 quarters its cost for real-time CPU models).        tde_accum_convs: 3x3 conv-BN-ReLU layers after each progressive accumulation (Eq. 5).
        tde_deform_groups: offset groups of the DCNv2 layers (Eq. 3-4).
        rdm_hidden: hidden width of the RDM gate MLPs (Eq. 6).
        head: "tdmi" (fuse M_u with the key frame's stage-4 feature) or "tdmi_st" (fuse with a
            spatiotemporal feature of the window's stage-4 features).
        head_res_blocks: residual blocks that fuse motion and visual features into F~.
        head_visual_skip: F~ = F_t + fuse(M_u, F_t) instead of fuse(M_u, F_t) (not in the paper): with
            the fusion's last layer zero-initialised, a temporal head starts as its single-frame model.
        heatmap_activation: "none" (the paper's linear heatmaps) or "sigmoid" (MoveNet's head).
        heatmap_sigma: Gaussian width of the training targets, heatmap pixels (paper family: 3).
        decode_refine: sub-pixel decoding of the heatmaps: "quarter" (the paper family's quarter-pixel
            shift) or "dark" (distribution-aware Taylor refinement; finer on coarse heatmaps).        freeze_backbone: keep HRNet parameters fixed and its BatchNorm in eval mode (the paper's
            protocol with a COCO-pretrained HRNet-W48).
    """

    name: str
    backbone: str = "hrnet"
    width: int = 48
    stem_channels: int = 64
    layer1_planes: int = 64
    layer1_blocks: int = 4
    stage_modules: tuple[int, int, int] = (1, 4, 3)
    stage_blocks: tuple[int, int, int] = (4, 4, 4)
    input_size_hw: tuple[int, int] = (384, 288)
    heatmap_size_hw: tuple[int, int] = (96, 72)
    num_keypoints: int = NUM_KEYPOINTS
    delta: int = 2
    window: str = "symmetric"
    tde_res_blocks: tuple[int, int, int, int] = (3, 3, 2, 2)
    tde_offset_res_blocks: int = 1
    tde_accum_convs: int = 1
    tde_deform_groups: int = 1
    tde_stride: int = 1
    rdm_hidden: int = 128
    head: str = "tdmi"
    head_res_blocks: int = 2
    head_visual_skip: bool = False
    heatmap_activation: str = "none"
    heatmap_sigma: float = 3.0
    decode_refine: str = "quarter"
    freeze_backbone: bool = True
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # Normalise list-like fields (YAML gives lists) to tuples so configs stay hashable.
        for f in ("stage_modules", "stage_blocks", "input_size_hw", "heatmap_size_hw", "tde_res_blocks"):
            value = getattr(self, f)
            if isinstance(value, list):
                object.__setattr__(self, f, tuple(value))
        _validate(self)

    @property
    def num_frames(self) -> int:
        """Frames per window, 2*delta+1."""
        return 2 * self.delta + 1

    @property
    def key_index(self) -> int:
        """Position of the key frame in the window: delta (symmetric) or 2*delta (causal)."""
        return 2 * self.delta if self.window == "causal" else self.delta

    @property
    def visual_frames(self) -> list[int]:
        """Window positions whose final-stage features the visual feature reads: all (TDMI-ST) or the key frame."""
        return list(range(self.num_frames)) if self.head == "tdmi_st" else [self.key_index]

    def hrnet_config(self) -> HRNetConfig:
        """The backbone's own config."""
        return HRNetConfig(
            width=self.width,
            stem_channels=self.stem_channels,
            layer1_planes=self.layer1_planes,
            layer1_blocks=self.layer1_blocks,
            stage_modules=self.stage_modules,
            stage_blocks=self.stage_blocks,
            num_joints=self.num_keypoints,
        )

    def tde_config(self) -> TDEConfig:
        """The Temporal Difference Encoder's own config."""
        return TDEConfig(
            channels=self.width,
            num_frames=self.num_frames,
            res_blocks=self.tde_res_blocks,
            offset_res_blocks=self.tde_offset_res_blocks,
            accum_convs=self.tde_accum_convs,
            deform_groups=self.tde_deform_groups,
            stride=self.tde_stride,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists for tuples) suitable for YAML and ``torch.load(weights_only=True)``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int_tuple(cfg: ModelConfig, name: str, length: int, minimum: int) -> None:
    value = getattr(cfg, name)
    if not (isinstance(value, tuple) and len(value) == length and all(_is_int(v) and v >= minimum for v in value)):
        raise ValueError(
            f"ModelConfig {cfg.name!r}: {name} must be {length} integers >= {minimum}, got {value!r}"
        )


def _validate(cfg: ModelConfig) -> None:
    """Raise ValueError (with the fix) for any inconsistent field."""
    if not isinstance(cfg.name, str) or not cfg.name:
        raise ValueError(f"ModelConfig.name must be a non-empty string, got {cfg.name!r}")
    for name, minimum in (
        ("width", 1),
        ("stem_channels", 1),
        ("layer1_planes", 1),
        ("layer1_blocks", 1),
        ("num_keypoints", 1),
        ("delta", 1),
        ("tde_offset_res_blocks", 0),
        ("tde_accum_convs", 0),
        ("tde_stride", 1),
        ("tde_deform_groups", 1),
        ("rdm_hidden", 1),
        ("head_res_blocks", 0),
    ):
        value = getattr(cfg, name)
        if not _is_int(value) or value < minimum:
            raise ValueError(f"ModelConfig {cfg.name!r}: {name} must be an integer >= {minimum}, got {value!r}")
    _check_int_tuple(cfg, "stage_modules", 3, 1)
    _check_int_tuple(cfg, "stage_blocks", 3, 1)
    _check_int_tuple(cfg, "tde_res_blocks", NUM_STAGES, 0)
    _check_int_tuple(cfg, "input_size_hw", 2, INPUT_DIVISOR)
    _check_int_tuple(cfg, "heatmap_size_hw", 2, 1)
    if any(v % INPUT_DIVISOR for v in cfg.input_size_hw):
        raise ValueError(
            f"ModelConfig {cfg.name!r}: input_size_hw {cfg.input_size_hw} must be multiples of {INPUT_DIVISOR} "
            "(HRNet's 1/32 branch is up-sampled by exact powers of two), e.g. (256, 192) or (384, 288)"
        )
    expected = tuple(v // FEATURE_STRIDE for v in cfg.input_size_hw)
    if cfg.heatmap_size_hw != expected:
        raise ValueError(
            f"ModelConfig {cfg.name!r}: heatmap_size_hw must be input_size_hw / {FEATURE_STRIDE} = {expected}, "
            f"got {cfg.heatmap_size_hw}"
        )
    for name, choices in (("backbone", BACKBONES), ("heatmap_activation", HEATMAP_ACTIVATIONS), ("window", WINDOWS),
                          ("decode_refine", DECODE_REFINES)):
        if getattr(cfg, name) not in choices:
            raise ValueError(f"ModelConfig {cfg.name!r}: {name} must be one of {choices}, got {getattr(cfg, name)!r}")
    if cfg.backbone == "movenet" and cfg.width != MOVENET_WIDTH:
        raise ValueError(f"ModelConfig {cfg.name!r}: the movenet backbone has width {MOVENET_WIDTH}, got {cfg.width}")
    if any(v % (FEATURE_STRIDE * cfg.tde_stride) for v in cfg.input_size_hw):
        raise ValueError(f"ModelConfig {cfg.name!r}: input_size_hw {cfg.input_size_hw} must divide by "
                         f"{FEATURE_STRIDE * cfg.tde_stride} (feature stride x tde_stride)")
    if cfg.head not in HEAD_KINDS:
        raise ValueError(f"ModelConfig {cfg.name!r}: head must be one of {HEAD_KINDS}, got {cfg.head!r}")
    if cfg.width % cfg.tde_deform_groups:
        raise ValueError(
            f"ModelConfig {cfg.name!r}: width {cfg.width} must be divisible by "
            f"tde_deform_groups {cfg.tde_deform_groups}"
        )
    if not (isinstance(cfg.heatmap_sigma, (int, float)) and cfg.heatmap_sigma > 0):
        raise ValueError(f"ModelConfig {cfg.name!r}: heatmap_sigma must be > 0, got {cfg.heatmap_sigma!r}")
    if not isinstance(cfg.head_visual_skip, bool):
        raise ValueError(f"ModelConfig {cfg.name!r}: head_visual_skip must be true/false, got {cfg.head_visual_skip!r}")
    if not isinstance(cfg.freeze_backbone, bool):
        raise ValueError(f"ModelConfig {cfg.name!r}: freeze_backbone must be true/false, got {cfg.freeze_backbone!r}")


_W48 = ModelConfig(
    name="tdmi_w48_384x288",
    description="The paper's model: HRNet-W48 (COCO) backbone, 384x288 crops, TDMI head.",
)

MODEL_CONFIGS: dict[str, ModelConfig] = {
    "tdmi_w48_384x288": _W48,
    "tdmi_st_w48_384x288": dataclasses.replace(
        _W48, name="tdmi_st_w48_384x288", head="tdmi_st", description="The paper's TDMI-ST variant."
    ),
    "tdmi_w32_256x192": ModelConfig(
        name="tdmi_w32_256x192",
        width=32,
        input_size_hw=(256, 192),
        heatmap_size_hw=(64, 48),
        description="HRNet-W32 (COCO) backbone at 256x192: the usual faster HRNet operating point.",
    ),
    "tdmi_lite": ModelConfig(
        name="tdmi_lite",
        width=16,
        stem_channels=32,
        layer1_planes=32,
        layer1_blocks=1,
        stage_modules=(1, 1, 1),
        stage_blocks=(2, 2, 2),
        input_size_hw=(128, 96),  # 3:4 like the paper; what weights/tdmi_lite.pt was trained at
        heatmap_size_hw=(32, 24),
        tde_res_blocks=(1, 1, 1, 1),
        tde_offset_res_blocks=0,  # the first distilled weights predate Eq. 3's residual blocks
        rdm_hidden=32,
        head_res_blocks=1,
        freeze_backbone=True,  # distilled: backbone pretrained single-frame, then frozen (weights/MODEL_CARD.md)
        description="Small HRNet-W16 with shallow stages (the first distilled model, kept for comparison).",
    ),
    "tdmi_movenet": ModelConfig(
        name="tdmi_movenet",
        backbone="movenet",
        width=MOVENET_WIDTH,
        input_size_hw=(256, 192),
        heatmap_size_hw=(64, 48),
        tde_res_blocks=(1, 1, 1, 1),
        tde_offset_res_blocks=1,
        tde_stride=2,  # motion at 1/8 (32x24): a quarter of the TDE's cost at 1/4
        rdm_hidden=32,
        head_res_blocks=1,
        head_visual_skip=True,
        heatmap_activation="sigmoid",
        heatmap_sigma=2.0,
        decode_refine="dark",
        freeze_backbone=True,
        description="TDMI on MoveNet Lightning's MobileNetV2-FPN trunk (pretrained, fine-tuned here): the "
        "real-time CPU default (weights/MODEL_CARD.md).",
    ),
}

# Fields added after weights files were first written: what a file without them was built with.
LEGACY_FIELD_DEFAULTS: dict[str, Any] = {"tde_offset_res_blocks": 0}


def _from_mapping(data: Mapping[str, Any], source: str) -> ModelConfig:
    """Build a config from a YAML mapping; ``base: <name>`` inherits a named variant."""
    data = dict(data)
    base_name = data.pop("base", None)
    check_known_fields(data, ModelConfig, "model config", source)
    if base_name is not None:
        if base_name not in MODEL_CONFIGS:
            raise ValueError(f"{source}: base {base_name!r} is not a named config; choose from {sorted(MODEL_CONFIGS)}")
        return dataclasses.replace(MODEL_CONFIGS[base_name], **data)
    if "name" not in data:
        raise ValueError(f"{source}: a model config needs a 'name' (or a 'base' to inherit from)")
    return ModelConfig(**data)


def load_model_config(name_or_yaml_path: str | Path, **overrides: Any) -> ModelConfig:
    """Return a validated :class:`ModelConfig` from a variant name or a YAML file, plus overrides.

    Args:
        name_or_yaml_path: a key of :data:`MODEL_CONFIGS` (e.g. ``"tdmi_lite"``) or a path to a
            ``.yaml``/``.yml`` file holding a mapping of :class:`ModelConfig` fields (optionally
            ``base: <name>`` to start from a named variant).
        **overrides: fields replaced after loading (validated again).

    Raises:
        ValueError: unknown name/keys or invalid values; FileNotFoundError: missing YAML file.
    """
    key = str(name_or_yaml_path)
    if key in MODEL_CONFIGS:
        cfg = MODEL_CONFIGS[key]
    elif key.endswith((".yaml", ".yml")):
        cfg = _from_mapping(read_yaml_mapping(key, "model config"), key)
    else:
        raise ValueError(
            f"unknown model config {key!r}: give one of {sorted(MODEL_CONFIGS)} or a path to a .yaml file"
        )
    if overrides:
        valid = {f.name for f in dataclasses.fields(ModelConfig)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise ValueError(f"unknown model config overrides {unknown}; valid keys are {sorted(valid)}")
        cfg = dataclasses.replace(cfg, **overrides)
    _logger.debug("model config %s: %s", cfg.name, cfg)
    return cfg


def model_config_from_dict(data: Mapping[str, Any]) -> ModelConfig:
    """Rebuild a config saved with :meth:`ModelConfig.to_dict` (e.g. inside a weights file).

    Fields missing from an older dict take the value the old code had (:data:`LEGACY_FIELD_DEFAULTS`).
    """
    data = {**LEGACY_FIELD_DEFAULTS, **data} if "base" not in data else dict(data)
    return _from_mapping(data, "model config dict")


def save_model_config(cfg: ModelConfig, path: str | Path) -> None:
    """Write ``cfg`` as a YAML file readable by :func:`load_model_config`."""
    import yaml

    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
