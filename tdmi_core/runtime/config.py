"""Runtime configuration: how to run a TDMI model on a stream (frozen, validated when built).

:class:`RuntimeConfig` is also the ``runtime`` section of the pose node's parameters: the same fields
are the ROS parameters ``runtime.backend``, ``runtime.weights``, ... and the ``runtime:`` mapping of
``config/pose.yaml``. ROS parameters cannot be null, so "not set" is ``""`` for text and ``0`` for
counts. Each field's ``metadata["help"]`` says what it means (the node declares it as the
parameter's description).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tdmi_core.config_io import check_known_fields, read_yaml_mapping
from tdmi_core.runtime.backends import BACKENDS, PRECISIONS
from tdmi_core.runtime.estimator import MODES

__all__ = ["RuntimeConfig", "default_cache_dir", "load_runtime_config"]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def default_cache_dir() -> Path:
    """Engine/ONNX cache: ``$TDMI_CACHE_DIR``, else ``$XDG_CACHE_HOME/tdmi_ros``, else ``~/.cache/tdmi_ros``."""
    if os.environ.get("TDMI_CACHE_DIR"):
        return Path(os.environ["TDMI_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tdmi_ros"


@dataclass(frozen=True)
class RuntimeConfig:
    """How to run a TDMI model on a stream (see each field's ``metadata["help"]``)."""

    model: str = field(default="tdmi_movenet", metadata=_help(
        "Model config name (e.g. tdmi_movenet) or YAML file; used only without weights (a weights file carries its "
        "config)."))
    weights: str = field(default="weights/tdmi_movenet.pt", metadata=_help(
        "TDMI weights file (relative to the working directory); \"\" for none."))
    allow_untrained: bool = field(default=False, metadata=_help(
        "Testing and benchmarks only: run an untrained model (random weights, BatchNorm calibrated) when weights "
        "is empty or missing; its poses are meaningless. Off: missing weights are an error."))
    seed: int = field(default=0, metadata=_help("Seed of the untrained model's random weights."))
    backend: str = field(default="onnxruntime", metadata=_help(
        "Inference backend: onnxruntime (CPU; the fastest here), torch or tensorrt (CUDA, Torch-TensorRT)."))
    device: str = field(default="cpu", metadata=_help("cpu, cuda or cuda:N."))
    precision: str = field(default="fp32", metadata=_help(
        "fp32, bf16 (torch: CPU with AVX512-BF16/AMX, or CUDA) or fp16 (CUDA)."))
    mode: str = field(default="aligned", metadata=_help(
        "aligned (every person-frame cropped once with its own box, windows resample those features into the key "
        "frame's box), streaming (held crop box, backbone features reused) or exact (each window re-cropped with "
        "its key frame's box, as in the paper)."))
    hold_threshold: float = field(default=0.1, metadata=_help(
        "Streaming mode: fraction of the crop size a person may move (or the box grow or shrink) before the held "
        "crop box follows (larger = more feature reuse, less exact crops)."))
    single_frame: bool = field(default=False, metadata=_help(
        "Run the weights as their single-frame twin (weights trained that way, e.g. *_single_frame.pt): every "
        "window is the key frame repeated, /poses without lag. The window of other weights comes from their "
        "config (symmetric: delta frames of lag; causal: none)."))
    box_padding: float = field(default=1.25, metadata=_help(
        "Person box enlargement before fitting the model's aspect ratio (1.25 in the paper family)."))
    shared_joint_distance: float = field(default=0.1, metadata=_help(
        "Where the same joint of two people lies closer than this fraction of the smaller box height (one crop "
        "locked onto the other person), the less confident one is published with score 0 and counted "
        "(diagnostics drop 'shared_joint'); 0 disables."))
    min_batch: int = field(default=1, metadata=_help("Smallest batch of the TensorRT optimisation profile."))
    opt_batch: int = field(default=5, metadata=_help("Batch TensorRT optimises for."))
    max_batch: int = field(default=16, metadata=_help(
        "Largest batch of one backend call (bigger batches are split; TensorRT profile maximum)."))
    cache_dir: str = field(default="", metadata=_help(
        "Directory for exported ONNX files and TensorRT engines; \"\" = $TDMI_CACHE_DIR, else "
        "$XDG_CACHE_HOME/tdmi_ros, else ~/.cache/tdmi_ros."))
    num_threads: int = field(default=1, metadata=_help(
        "CPU threads of torch / ONNX Runtime; 0 = the library's default. 1 is faster in the pipeline: the detector "
        "gets the other core (docs/runtime.md)."))

    def __post_init__(self) -> None:
        spec = BACKENDS.get(self.backend)
        if spec is None:
            raise ValueError(f"runtime backend must be one of {tuple(BACKENDS)}, got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"runtime precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.mode not in MODES:
            raise ValueError(f"runtime mode must be one of {MODES}, got {self.mode!r}")
        if not (self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")):
            raise ValueError(f"runtime device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.device.split(":")[0] not in spec.devices:
            raise ValueError(f"backend {self.backend!r} runs on device {' or '.join(spec.devices)}, not "
                             f"{self.device!r}; choose another backend or device")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(
                f"need 1 <= min_batch <= opt_batch <= max_batch, got {self.min_batch}, {self.opt_batch}, {self.max_batch}"
            )
        if not self.hold_threshold >= 0:
            raise ValueError(f"hold_threshold must be >= 0, got {self.hold_threshold}")
        if not self.box_padding > 0:
            raise ValueError(f"box_padding must be > 0, got {self.box_padding}")
        if not self.shared_joint_distance >= 0:
            raise ValueError(f"shared_joint_distance must be >= 0, got {self.shared_joint_distance}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0 (0 = library default), got {self.num_threads}")
        if not self.weights and not self.allow_untrained:
            raise ValueError(
                "runtime config has no weights: set runtime.weights to a TDMI weights file "
                "(or runtime.allow_untrained for tests and benchmarks, whose poses are meaningless)"
            )

    def cache_path(self) -> Path:
        """Resolved cache directory."""
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()


def _runtime_section(data: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    """The runtime fields of a YAML file: top level, a ``runtime:`` mapping, or a ROS parameter file's
    ``<node>: ros__parameters: runtime:`` (the pose node's section of ``config/pose.yaml``)."""
    if "runtime" in data:
        return data["runtime"]
    in_nodes = [params["runtime"] for params in (
        (node or {}).get("ros__parameters") for node in data.values() if isinstance(node, Mapping)
    ) if isinstance(params, Mapping) and "runtime" in params]
    if len(in_nodes) > 1:
        raise ValueError(f"{source}: more than one node has a runtime section")
    return in_nodes[0] if in_nodes else data


def load_runtime_config(source: str | Path | Mapping[str, Any] | None = None, **overrides: Any) -> RuntimeConfig:
    """A validated :class:`RuntimeConfig` from a YAML file, a mapping or defaults, plus overrides.

    A YAML file may hold the fields at top level, under ``runtime:``, or be a ROS parameter file
    whose node has a ``runtime:`` section (``config/pose.yaml``).
    """
    data: dict[str, Any] = {}
    if isinstance(source, Mapping):
        data = dict(source)
    elif source is not None:
        data = dict(_runtime_section(read_yaml_mapping(source, "runtime config"), str(source)))
    data.update(overrides)
    check_known_fields(data, RuntimeConfig, "runtime config")
    return RuntimeConfig(**data)
