"""On-disk cache of compiled programs (TensorRT engines, exported ONNX files), keyed by everything that matters.

A compiled program is only valid for the exact weights, compiler/runtime versions, GPU, precision
and input shape range it was built for. :class:`EngineKey` holds those fields; its digest names the
file. :class:`EngineCache` stores ``<part>-<digest>.<ext>`` plus a ``.json`` sidecar with the full
key, and a lookup only hits when the sidecar's key equals the wanted key field by field, so a
changed field means a rebuild (and a log line naming the field), never a silently wrong engine.
Writes are atomic (temporary file, then rename), so an interrupted build leaves no half file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

_logger = logging.getLogger(__name__)

__all__ = ["EngineKey", "EngineCache", "model_fingerprint"]


def model_fingerprint(model: nn.Module, model_cfg: Any = None) -> str:
    """SHA-256 (hex, 16 chars) over the names, shapes, dtypes and values of ``model.state_dict()``,
    and ``model_cfg`` (its ``to_dict()``) when given.

    Values are hashed as stored (after any cast), so an fp16 copy hashes differently from fp32. The
    config counts because equal weights can make different graphs (a causal head reads another frame).
    """
    h = hashlib.sha256()
    if model_cfg is not None:
        h.update(json.dumps(model_cfg.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class EngineKey:
    """Everything a compiled program depends on.

    Attributes:
        part: which sub-network (``"backbone"`` or ``"head"``).
        model_hash: :func:`model_fingerprint` of the weights.
        model_name: model config name (for humans; the hash decides).
        compiler: compiler name and version, e.g. ``"torch_tensorrt-2.14.0"`` or ``"onnx-opset19"``.
        runtime: runtime library version, e.g. ``"tensorrt-10.15.1"`` or ``"onnxruntime-1.32.0"``.
        torch_version: torch version (exported programs depend on it).
        device: device the program was built for, e.g. ``"NVIDIA H100 80GB HBM3 (sm_90)"`` or ``"cpu"``.
        precision: ``"fp16"``, ``"fp32"``, ...
        min_shape, opt_shape, max_shape: input shape range (batch first).
    """

    part: str
    model_hash: str
    model_name: str
    compiler: str
    runtime: str
    torch_version: str
    device: str
    precision: str
    min_shape: tuple[int, ...]
    opt_shape: tuple[int, ...]
    max_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        for f in ("min_shape", "opt_shape", "max_shape"):
            object.__setattr__(self, f, tuple(int(v) for v in getattr(self, f)))
        if not (len(self.min_shape) == len(self.opt_shape) == len(self.max_shape)):
            raise ValueError(f"min/opt/max shapes must have equal rank: {self.min_shape}, {self.opt_shape}, {self.max_shape}")
        if not all(a <= b <= c for a, b, c in zip(self.min_shape, self.opt_shape, self.max_shape)):
            raise ValueError(f"need min <= opt <= max per axis: {self.min_shape}, {self.opt_shape}, {self.max_shape}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (lists for shapes)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EngineKey":
        """Inverse of :meth:`to_dict` (raises TypeError/ValueError on a malformed dict)."""
        return cls(**data)

    def digest(self) -> str:
        """SHA-256 hex of the canonical JSON of all fields."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def differences(self, other: "EngineKey") -> list[str]:
        """Names of the fields that differ from ``other``."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name)]


class EngineCache:
    """Directory of compiled programs keyed by :class:`EngineKey`.

    Args:
        root: cache directory (created on first store).
        extension: file extension of the stored programs (``"ep"`` for Torch-TensorRT exported
            programs, ``"onnx"`` for ONNX files).
    """

    def __init__(self, root: str | Path, extension: str = "ep") -> None:
        self.root = Path(root).expanduser()
        self.extension = extension.lstrip(".")

    def path_for(self, key: EngineKey) -> Path:
        """Where the program for ``key`` lives (whether or not it exists)."""
        return self.root / f"{key.model_name}-{key.part}-{key.digest()[:20]}.{self.extension}"

    def _meta_path(self, path: Path) -> Path:
        return path.with_suffix(path.suffix + ".json")

    def lookup(self, key: EngineKey) -> Path | None:
        """Path of a stored program built for exactly ``key``, else None (reason logged)."""
        path = self.path_for(key)
        meta = self._meta_path(path)
        if path.is_file() and meta.is_file():
            try:
                stored = EngineKey.from_dict(json.loads(meta.read_text(encoding="utf-8")))
            except (ValueError, TypeError) as e:  # json errors are ValueError
                _logger.warning("engine cache: unreadable key file %s (%s); rebuilding", meta, e)
                return None
            diff = stored.differences(key)
            if not diff:
                return path
            _logger.warning("engine cache: %s was built for different %s; rebuilding", path.name, diff)
            return None
        others = self.entries(part=key.part, model_name=key.model_name)
        if others:
            _logger.info(
                "engine cache: no %s program for this key; stored ones differ in %s",
                key.part,
                sorted({d for other in others for d in other.differences(key)}),
            )
        return None

    def store(self, key: EngineKey, write: Callable[[Path], None]) -> Path:
        """Write a program with ``write(tmp_path)``, then atomically move it (and its key) into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path_for(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
        try:
            write(tmp)
            if not tmp.is_file():
                raise RuntimeError(f"engine cache: the writer did not create {tmp}")
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        meta = self._meta_path(path)
        tmp_meta = meta.with_name(f".{meta.name}.{os.getpid()}.tmp")
        tmp_meta.write_text(json.dumps(key.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp_meta, meta)
        _logger.info("engine cache: stored %s", path)
        return path

    def entries(self, part: str | None = None, model_name: str | None = None) -> list[EngineKey]:
        """Keys of all readable stored programs, optionally filtered."""
        if not self.root.is_dir():
            return []
        keys = []
        for meta in sorted(self.root.glob(f"*.{self.extension}.json")):
            try:
                key = EngineKey.from_dict(json.loads(meta.read_text(encoding="utf-8")))
            except (ValueError, TypeError):
                continue
            if (part is None or key.part == part) and (model_name is None or key.model_name == model_name):
                keys.append(key)
        return keys

    def clear(self) -> int:
        """Delete all stored programs and keys; returns how many programs were removed."""
        if not self.root.is_dir():
            return 0
        n = 0
        for path in self.root.glob(f"*.{self.extension}"):
            path.unlink()
            n += 1
        for meta in self.root.glob(f"*.{self.extension}.json"):
            meta.unlink()
        return n
