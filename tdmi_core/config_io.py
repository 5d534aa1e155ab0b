"""Reading the YAML files behind our frozen-dataclass configs (model, runtime, training, distillation).

One place for the checks every config file gets: the file exists, it holds a mapping, and every
key names a field of the config class (a typo is an error, never a silently ignored setting).
Values are validated by each dataclass itself.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping


def check_known_fields(data: Mapping[str, Any], schema: type, what: str, source: str = "") -> None:
    """Raise ``ValueError`` naming the unknown keys of ``data`` for the dataclass ``schema``.

    Args:
        what: how the error names the config, e.g. ``"runtime config"``.
        source: where ``data`` came from (a file name), prefixed to the message when given.
    """
    valid = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(data) - valid)
    if unknown:
        prefix = f"{source}: " if source else ""
        raise ValueError(f"{prefix}unknown {what} keys {unknown}; valid keys are {sorted(valid)}")


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The mapping in the YAML file ``path`` (an empty file is an empty mapping).

    Raises:
        FileNotFoundError: no such file. ValueError: the file holds something other than a mapping.
    """
    import yaml  # local: only needed when a file is read

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping of {what} fields, got {type(data).__name__}")
    return dict(data)
