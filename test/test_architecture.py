"""The import graph of docs/architecture.md, checked on the source: allowed edges only, no cycles.

Every ``import`` in tdmi_core and tdmi_ros is read with ``ast`` (inside functions too; imports under
``if TYPE_CHECKING:`` are type hints, not dependencies). Each module belongs to one part; an import
from one part into another must be in :data:`ALLOWED`.
"""
from __future__ import annotations

import ast
import graphlib
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tdmi_core", "tdmi_ros")

# Shared leaf modules every layer may build on (they import numpy/cv2/torch/onnxruntime and each other).
FLOOR = {"config_io", "codec", "geometry", "model_input", "visualize", "tracking", "detection"}

# part -> parts it may import (docs/architecture.md, "What may import what")
ALLOWED: dict[str, set[str]] = {
    "skeleton": {"skeleton"},
    "floor": {"floor", "skeleton"},
    "models": {"models", "floor", "skeleton"},
    "data": {"data", "floor", "skeleton"},
    "eval": {"eval", "skeleton"},
    "train": {"train", "models", "data", "eval", "floor", "skeleton"},
    "runtime": {"runtime", "models", "floor", "skeleton"},
    "tools": {"tools", "train", "eval", "runtime", "data", "models", "floor", "skeleton"},
    "tdmi_ros": {"tdmi_ros", "runtime", "floor", "skeleton"},
}
ROS_MODULES = ("rclpy", "rcl_interfaces", "launch", "launch_ros", "rosidl_parser", "rosidl_runtime_py",
               "builtin_interfaces", "std_msgs", "sensor_msgs", "geometry_msgs", "visualization_msgs",
               "diagnostic_msgs", "lifecycle_msgs", "vision_msgs", "tdmi_msgs", "ament_index_python")
EVAL_THIRD_PARTY = {"numpy", "scipy"}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def part_of(module: str) -> str:
    """The part of one of our modules (see ALLOWED)."""
    top, _, rest = module.partition(".")
    if top == "tdmi_ros":
        return "tdmi_ros"
    first = rest.split(".")[0] if rest else ""
    if first == "skeleton":
        return "skeleton"
    if first in FLOOR or not rest:
        return "floor"
    return first


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(module: str) -> set[str]:
    """Absolute names this module imports (our modules resolved to the module file they name)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(n) for block in ast.walk(tree) if _type_checking_block(block) for n in ast.walk(block)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:  # "from pkg import submodule" names the submodule
                names.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return names


def internal_edges() -> dict[str, set[str]]:
    edges = {}
    for module in MODULES:
        targets = set()
        for name in imports_of(module):
            while name and name not in MODULES and name.split(".")[0] in PACKAGES:
                name = name.rpartition(".")[0]  # "import tdmi_core.runtime.x.y" of a symbol: its module
            if name in MODULES and name != module:
                targets.add(name)
        edges[module] = targets
    return edges


EDGES = internal_edges()


def test_every_module_has_a_part() -> None:
    assert {part_of(m) for m in MODULES} <= set(ALLOWED)
    assert part_of("tdmi_core.tools.bench") == "tools" and part_of("tdmi_core.geometry") == "floor"


def test_imports_follow_the_allowed_edges() -> None:
    bad = sorted(
        f"{src} -> {dst} ({part_of(src)} may not import {part_of(dst)})"
        for src, targets in EDGES.items() for dst in targets
        if part_of(dst) not in ALLOWED[part_of(src)]
    )
    assert not bad, "\n".join(bad)


def test_no_import_cycles() -> None:
    try:
        tuple(graphlib.TopologicalSorter(EDGES).static_order())
    except graphlib.CycleError as e:
        pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")


def test_tdmi_core_never_imports_ros() -> None:
    bad = sorted(f"{m}: {name}" for m in MODULES if m.startswith("tdmi_core")
                 for name in imports_of(m) if name.split(".")[0] in ROS_MODULES)
    assert not bad, "\n".join(bad)


def test_eval_imports_only_numpy_scipy_and_the_standard_library() -> None:
    bad = sorted(
        f"{m}: {name}" for m in MODULES if part_of(m) == "eval" for name in imports_of(m)
        if name.split(".")[0] not in PACKAGES and name.split(".")[0] not in EVAL_THIRD_PARTY
        and name.split(".")[0] not in sys.stdlib_module_names
    )
    assert not bad, "\n".join(bad)


def test_the_detector_node_and_the_worker_do_not_load_torch() -> None:
    """The detector node runs on the runtime's worker; that must not pull torch into its process."""
    seen, todo = set(), ["tdmi_ros.detector_node"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(EDGES[module])
    heavy = sorted(f"{m}: {name}" for m in seen for name in imports_of(m) if name.split(".")[0] == "torch")
    assert "tdmi_core.runtime.worker" in seen and not heavy, heavy


def test_the_checker_sees_a_forbidden_edge_and_a_cycle() -> None:
    """The rules above can fail: a runtime -> train edge and a two-module cycle are caught."""
    assert part_of("tdmi_core.train.trainer") not in ALLOWED[part_of("tdmi_core.runtime.estimator")]
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter({"a": {"b"}, "b": {"a"}}).static_order())
