"""rosbag2 recordings without ``ros2 bag`` (which is not on PyPI), through the ``rosbags`` library.

A recording is a rosbag2 folder (``metadata.yaml`` + storage files) as ``ros2 bag record`` writes
it: :mod:`tdmi_ros.bag_recorder` writes MCAP (``ros2 bag``, Foxglove and any MCAP reader open it),
:mod:`tdmi_ros.bag_player` plays MCAP and sqlite3. Messages stay serialized (CDR) from the
subscription to the file and from the file to the publisher, so a replay publishes the recorded
bytes.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def message_class(msgtype: str) -> type:
    """The Python class of message type ``pkg/msg/Name``."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def typestore(msgtypes: Iterable[str]) -> Any:
    """rosbags' Kilted type store with the installed definitions of the packages of ``msgtypes``.

    The store writes each topic's schema (message definition and RIHS01 hash) into the recording;
    registering the installed ``.msg`` files adds our own messages and refuses, with an error, a
    definition that differs from the store's.
    """
    from ament_index_python.packages import get_package_share_directory
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    for package in sorted({msgtype.split("/")[0] for msgtype in msgtypes}):
        types: dict[str, Any] = {}
        for path in sorted((Path(get_package_share_directory(package)) / "msg").glob("*.msg")):
            types.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
        store.register(types)
    return store
