"""config/pose.yaml documents every parameter the nodes declare; launch file and tdmi-pose agree."""
from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from tdmi_core.runtime.config import RuntimeConfig, load_runtime_config
from tdmi_ros.detector_node import DETECTOR_PARAMS
from tdmi_ros.launch_cli import DETECTOR, POSE, RECORDER, VIDEO, node_commands
from tdmi_ros.params import PoseNodeConfig, pose_parameters
from tdmi_ros.video_publisher import VIDEO_PARAMS


@pytest.fixture(scope="module")
def pose_yaml(repo_root: Path) -> Path:
    return repo_root / "config" / "pose.yaml"


def _flatten(params: dict) -> dict:
    """A node's YAML parameters as ROS names them: nested mappings become dotted names."""
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update({f"{key}.{name}": v for name, v in value.items()})
        else:
            out[key] = value
    return out


def _commented(lines: list[str]) -> set[str]:
    """Parameter names (dotted inside a section) whose YAML line carries a comment."""
    names, section = set(), None
    for line in lines:
        if m := re.match(r" {4}(\w+):\s*$", line):
            section = m.group(1)
        elif m := re.match(r" {4}(\w+):.*#\s*\S", line):
            section = None
            names.add(m.group(1))
        elif (m := re.match(r" {6}(\w+):.*#\s*\S", line)) and section:
            names.add(f"{section}.{m.group(1)}")
    return names


def _section_lines(text: str, node: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"{node}:")
    out = []
    for line in lines[start + 1:]:
        if line and not line.startswith(" ") and not line.startswith("#"):
            break
        out.append(line)
    return out


@pytest.mark.parametrize(
    ("node", "declared"),
    [(POSE, set(pose_parameters())), (VIDEO, set(VIDEO_PARAMS)), (DETECTOR, set(DETECTOR_PARAMS))],
)
def test_yaml_lists_exactly_the_declared_parameters_each_with_a_comment(pose_yaml, node, declared):
    text = pose_yaml.read_text()
    params = _flatten(yaml.safe_load(text)[node]["ros__parameters"])
    assert set(params) == declared
    commented = _commented(_section_lines(text, node))
    assert commented == declared, f"parameters without a comment: {declared - commented}"


def test_schema_table_and_defaults_agree(pose_yaml):
    declared = pose_parameters()
    # one schema: the node's own fields plus exactly RuntimeConfig's, as runtime.<field>
    assert set(declared) == ({f.name for f in fields(PoseNodeConfig) if f.name != "runtime"}
                             | {f"runtime.{f.name}" for f in fields(RuntimeConfig)})
    values = yaml.safe_load(pose_yaml.read_text())[POSE]["ros__parameters"]
    cfg = PoseNodeConfig.from_dict(values)
    # the YAML is the documented default: it must equal the node's built-in defaults
    assert cfg == PoseNodeConfig()
    assert PoseNodeConfig.from_dict(_flatten(values)) == cfg  # dotted names, as ROS passes them
    assert load_runtime_config(pose_yaml) == cfg.runtime  # the tools read the same section
    flat = _flatten(values)
    for name, (default, description) in declared.items():
        assert description, name
        # typed ROS params: a float written as 0 would be refused by rclpy
        assert type(flat[name]) is (list if isinstance(default, tuple) else type(default)), name


def test_invalid_values_are_refused_with_the_name():
    with pytest.raises(ValueError, match="queue_depth"):
        PoseNodeConfig(queue_depth=0)
    with pytest.raises(ValueError, match="backend"):
        PoseNodeConfig.from_dict({"runtime.backend": "tflite"})
    with pytest.raises(ValueError, match="unknown pose node parameter"):
        PoseNodeConfig.from_dict({"qeue_depth": 3})
    with pytest.raises(ValueError, match="unknown runtime config keys"):
        PoseNodeConfig.from_dict({"runtime": {"weights_path": "x.pt"}})


def test_node_commands_follow_yaml_and_flags(pose_yaml, tmp_path):
    names = [c.name for c in node_commands(pose_yaml)]
    assert names == [POSE]
    cmds = node_commands(pose_yaml, video="v.mp4", detector=True, pose_overrides={"runtime.allow_untrained": "true"},
                         record=str(tmp_path / "r.jsonl"))
    assert [c.name for c in cmds] == [VIDEO, DETECTOR, POSE, RECORDER]
    by = {c.name: c.argv for c in cmds}
    for name in (VIDEO, DETECTOR, POSE):
        i = by[name].index("--params-file")
        assert Path(by[name][i + 1]) == pose_yaml.resolve()
    assert "source:=v.mp4" in by[VIDEO] and "runtime.allow_untrained:=true" in by[POSE]
    cfg = yaml.safe_load(pose_yaml.read_text())
    cfg[VIDEO]["ros__parameters"]["enabled"] = True
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(cfg))
    assert [c.name for c in node_commands(other)] == [VIDEO, POSE]
    bad = tmp_path / "bad.yaml"
    bad.write_text("foo: 1\n")
    with pytest.raises(ValueError, match="tdmi_pose"):
        node_commands(bad)


def test_node_commands_for_several_cameras_in_one_node_or_one_node_each(pose_yaml):
    (one,) = [c for c in node_commands(pose_yaml, cameras=["cam0", "cam1"]) if c.name == POSE]
    assert one.argv[-2:] == ["-p", 'cameras:=["cam0", "cam1"]'] and "--params-file" in one.argv
    each = [c for c in node_commands(pose_yaml, cameras=["cam0", "cam1"], node_per_camera=True) if c.name.startswith(POSE)]
    assert [c.name for c in each] == [f"{POSE}_cam0", f"{POSE}_cam1"]
    for cmd, camera in zip(each, ("cam0", "cam1")):
        # in a namespace the file's tdmi_pose section would not match: its values travel as -p
        assert f"__ns:=/{camera}" in cmd.argv and "--params-file" not in cmd.argv
        assert 'runtime.weights:="weights/tdmi_lite.pt"' in cmd.argv and 'cameras:=[""]' in cmd.argv


def test_launch_file_builds_its_processes_with_node_commands(repo_root):
    """ros2 launch is not on pip: check the file parses and delegates to node_commands."""
    source = (repo_root / "launch" / "pose.launch.py").read_text()
    tree = ast.parse(source)
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs
    assert "node_commands(" in source and "default_config_path()" in source
    try:
        from launch import LaunchDescription  # noqa: F401 (the repo's launch/ folder is not this package)
    except ImportError:
        pytest.skip("launch (ROS 2) not installed: only the static checks ran")
    import importlib.util

    spec = importlib.util.spec_from_file_location("pose_launch", repo_root / "launch" / "pose.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.generate_launch_description().entities
