"""Loading and saving weights: official HRNet pose checkpoints and our own TDMI weight files.

Every file is read with ``torch.load(..., weights_only=True)`` (no arbitrary pickles) and checked
before use; a wrong or corrupt file raises :class:`WeightsError` saying what is wrong and what to do.

* :func:`load_hrnet_checkpoint` -- an official ``pose_hrnet_w{32,48}_*.pth`` (COCO) into the
  backbone, strictly by key name (``module.`` prefixes and ``state_dict`` wrappers accepted).
* :func:`save_weights` / :func:`load_weights` -- a whole TDMI model plus its :class:`ModelConfig`.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tdmi_core.models.configs import ModelConfig, model_config_from_dict
from tdmi_core.models.hrnet import HRNet
from tdmi_core.models.tdmi import TDMI, build_model

_logger = logging.getLogger(__name__)

WEIGHTS_FORMAT = "tdmi-ros/weights"
WEIGHTS_VERSION = 1
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
_MAX_LISTED = 8


class WeightsError(ValueError):
    """A weights file is unreadable, corrupt, or does not match the model."""


def _read(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- the unpickler raises many types; all mean "unreadable", re-raised
        raise WeightsError(
            f"{path} is not a readable PyTorch checkpoint (corrupt, truncated, or not saved with torch.save; "
            f"files with arbitrary pickled objects are refused by weights_only=True): {e}"
        ) from e


def _unwrap_state_dict(obj: Any, source: str) -> dict[str, Tensor]:
    """Find the tensor mapping inside common checkpoint wrappers and strip DataParallel prefixes."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{source}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise WeightsError(f"{source}: not a state dict; non-tensor entries such as {bad[:_MAX_LISTED]}")
    out: dict[str, Tensor] = {}
    for k, v in obj.items():
        out[k[len("module.") :] if k.startswith("module.") else k] = v
    return out


def _describe_width(state: Mapping[str, Tensor]) -> str:
    w = state.get("transition1.0.0.weight")
    return f"HRNet-W{w.shape[0]}" if isinstance(w, Tensor) and w.dim() == 4 else "an unknown network"


def _match_state_dict(module: nn.Module, state: dict[str, Tensor], source: str) -> dict[str, Tensor]:
    """Check keys and shapes against ``module`` and return the dict to load strictly."""
    target = module.state_dict()
    state = dict(state)
    # Checkpoints from old PyTorch lack BatchNorm's num_batches_tracked; it is unused at inference.
    missing_nbt = [k for k in target if k.endswith("num_batches_tracked") and k not in state]
    if missing_nbt and not any(k.endswith("num_batches_tracked") for k in state):
        for k in missing_nbt:
            state[k] = target[k].clone()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    if missing or unexpected:
        raise WeightsError(
            f"{source}: keys do not match the {type(module).__name__} layout "
            f"({len(missing)} missing, e.g. {missing[:_MAX_LISTED]}; {len(unexpected)} unexpected, e.g. "
            f"{unexpected[:_MAX_LISTED]}). Give an official HRNet pose checkpoint (pose_hrnet_w*.pth) or "
            "a file written by save_weights."
        )
    wrong = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in target.items() if state[k].shape != v.shape]
    if wrong:
        raise WeightsError(
            f"{source}: {len(wrong)} tensors have the wrong shape (key, file, model), e.g. {wrong[:_MAX_LISTED]}. "
            f"The file looks like {_describe_width(state)}; pick the model config of that width."
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise WeightsError(f"{source}: non-finite values (NaN/inf) in {bad[:_MAX_LISTED]}; the file is corrupt")
    return state


def load_hrnet_checkpoint(model_or_backbone: TDMI | HRNet, path: str | Path) -> None:
    """Load an official HRNet pose checkpoint into ``model.backbone`` (or an :class:`HRNet`), strictly.

    Args:
        model_or_backbone: a :class:`TDMI` (its ``backbone`` is loaded) or an :class:`HRNet`.
        path: ``pose_hrnet_w48_384x288.pth`` or another official COCO/MPII-17 pose HRNet file of
            the same width (keys as in the official ``pose_hrnet.py``).

    Raises:
        FileNotFoundError: missing file; WeightsError: corrupt file, wrong keys, wrong width/joints.
    """
    backbone = model_or_backbone.backbone if isinstance(model_or_backbone, TDMI) else model_or_backbone
    if not isinstance(backbone, HRNet):
        raise TypeError(f"load_hrnet_checkpoint needs a TDMI model or an HRNet, got {type(model_or_backbone).__name__}")
    source = str(path)
    state = _match_state_dict(backbone, _unwrap_state_dict(_read(path), source), source)
    backbone.load_state_dict(state, strict=True)
    _logger.info("loaded HRNet checkpoint %s (%d tensors)", source, len(state))


def save_weights(model: TDMI, path: str | Path, cfg: ModelConfig | None = None) -> None:
    """Write ``model``'s weights and config to ``path`` (readable by :func:`load_weights`)."""
    cfg = cfg if cfg is not None else model.cfg
    if cfg != model.cfg:
        raise ValueError(f"config {cfg.name!r} does not describe this model ({model.cfg.name!r}); pass model.cfg")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": WEIGHTS_FORMAT,
        "version": WEIGHTS_VERSION,
        "config": cfg.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a crash never leaves a half-written weights file


def load_weights(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[TDMI, ModelConfig]:
    """Read a file written by :func:`save_weights`; returns ``(model in eval mode, cfg)``.

    Raises:
        FileNotFoundError: missing file; WeightsError: not a TDMI weights file, or corrupt/mismatched.
    """
    source = str(path)
    payload = _read(path)
    if not isinstance(payload, Mapping) or payload.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(
            f"{source} is not a TDMI weights file (no format={WEIGHTS_FORMAT!r}); for an official HRNet "
            "checkpoint use load_hrnet_checkpoint(model, path)"
        )
    if payload.get("version") != WEIGHTS_VERSION:
        raise WeightsError(f"{source}: weights format version {payload.get('version')!r}, expected {WEIGHTS_VERSION}")
    try:
        cfg = model_config_from_dict(payload["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{source}: stored model config is invalid: {e}") from e
    model = build_model(cfg)
    state = _match_state_dict(model, _unwrap_state_dict(payload.get("state_dict"), source), source)
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval(), cfg
