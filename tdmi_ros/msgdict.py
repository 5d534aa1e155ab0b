"""Generic ROS message <-> plain Python dict conversion (rosidl_runtime_py is not on pip).

Used by the recorder (poses → JSON lines) and by tests that compare messages field by field.
"""
from __future__ import annotations

import importlib
from typing import Any

from rosidl_parser.definition import AbstractNestedType, NamespacedType


def _is_message(value: Any) -> bool:
    return hasattr(value, "get_fields_and_field_types") and hasattr(value, "SLOT_TYPES")


def message_to_dict(msg: Any) -> dict[str, Any]:
    """Convert a ROS message to nested dicts/lists of Python scalars (field order kept)."""
    out: dict[str, Any] = {}
    for field in msg.get_fields_and_field_types():
        out[field] = _value_to_plain(getattr(msg, field))
    return out


def _value_to_plain(value: Any) -> Any:
    if _is_message(value):
        return message_to_dict(value)
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if isinstance(value, str):
        return value
    if hasattr(value, "tolist"):  # numpy arrays, array.array
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_value_to_plain(v) for v in value]
    return value


def _message_class(ns_type: NamespacedType) -> type:
    module = importlib.import_module(".".join(ns_type.namespaces))
    return getattr(module, ns_type.name)


def dict_to_message(msg_class: type, data: dict[str, Any]) -> Any:
    """Build a ``msg_class`` instance from a dict as produced by :func:`message_to_dict`.

    Fields missing from ``data`` keep their defaults; unknown keys raise ``KeyError``.
    """
    msg = msg_class()
    fields = list(msg_class.get_fields_and_field_types())
    unknown = set(data) - set(fields)
    if unknown:
        raise KeyError(f"{msg_class.__name__} has no field(s) {sorted(unknown)}; fields are {fields}")
    for field, slot_type in zip(fields, msg_class.SLOT_TYPES):
        if field not in data:
            continue
        value = data[field]
        if isinstance(slot_type, NamespacedType):
            value = dict_to_message(_message_class(slot_type), value)
        elif isinstance(slot_type, AbstractNestedType) and isinstance(slot_type.value_type, NamespacedType):
            cls = _message_class(slot_type.value_type)
            value = [dict_to_message(cls, v) for v in value]
        setattr(msg, field, value)
    return msg
