"""Training checkpoints: model + loss module + optimizer + scheduler + scaler + epoch + RNG states.

Files hold only tensors and plain containers, so they load with ``torch.load(weights_only=True)``
(no arbitrary code runs from a checkpoint). Writes are atomic (temp file + rename).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import torch

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "tdmi-train-checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("model", "loss", "optimizer", "scheduler", "epoch", "global_step", "rng")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (corrupt, wrong kind, or from another configuration)."""


def capture_rng_state() -> dict[str, Any]:
    """Torch CPU (and CUDA) generator states. Data order and augmentation are seeded per epoch and sample,
    so they need no saved state."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states only when CUDA is present)."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` (must hold :data:`REQUIRED_KEYS`) atomically."""
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(data, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises:
        FileNotFoundError: no such file. CheckpointError: unreadable, not a training checkpoint, or incomplete.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated / foreign / unsafe files
        raise CheckpointError(f"{path}: cannot load as a safe (weights_only) checkpoint: {e}") from e
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a TDMI training checkpoint; to start from model weights use init_weights instead of resume"
        )
    if data.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {data.get('version')!r}, expected {CHECKPOINT_VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {missing}")
    return data
