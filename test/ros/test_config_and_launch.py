"""config/pose.yaml documents every parameter the nodes declare; launch file and tdmi-pose agree.

``ros2 launch`` cannot be installed from pip, so the launch file is checked here from its source
(scripts/launch_check.sh runs it for real with the upstream launch tooling).
"""
from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from tdmi_core.runtime.config import RuntimeConfig, load_runtime_config
from tdmi_ros.detector_node import DETECTOR_PARAMS
from tdmi_ros.launch_cli import DETECTOR, POSE, RECORDER, VIDEO, node_commands, node_parameters
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
    start = lines.index(f"/**/{node}:")
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
    params = _flatten(node_parameters(yaml.safe_load(text), node))
    assert set(params) == declared
    commented = _commented(_section_lines(text, node))
    assert commented == declared, f"parameters without a comment: {declared - commented}"


def test_schema_table_and_defaults_agree(pose_yaml):
    declared = pose_parameters()
    # one schema: the node's own fields plus exactly RuntimeConfig's, as runtime.<field>
    assert set(declared) == ({f.name for f in fields(PoseNodeConfig) if f.name != "runtime"}
                             | {f"runtime.{f.name}" for f in fields(RuntimeConfig)})
    values = node_parameters(yaml.safe_load(pose_yaml.read_text()), POSE)
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


def test_sections_are_keyed_for_any_namespace(pose_yaml):
    """``/**/<node>``: a launch_ros Node in a namespace silently ignores a section keyed by the bare name."""
    keys = set(yaml.safe_load(pose_yaml.read_text()))
    assert keys == {f"/**/{node}" for node in (POSE, VIDEO, DETECTOR)}


def test_detector_and_node_score_thresholds_agree(pose_yaml):
    """Every box the shipped detector publishes passes the pose node's own filter: one threshold decides."""
    config = yaml.safe_load(pose_yaml.read_text())
    assert node_parameters(config, POSE)["min_box_score"] <= node_parameters(config, DETECTOR)["min_score"]


def test_node_parameters_merges_sections_as_rcl_does():
    config = {"/**": {"ros__parameters": {"a": 1, "b": 1}}, "/**/tdmi_pose": {"ros__parameters": {"b": 2}},
              "/other": {"ros__parameters": {"c": 3}}}
    assert node_parameters(config, POSE) == {"a": 1, "b": 2}


def test_node_commands_follow_the_flags(pose_yaml, tmp_path):
    assert [c.name for c in node_commands(pose_yaml)] == [POSE]
    cmds = node_commands(pose_yaml, video="v.mp4", detector=True, allow_untrained=True, record="r.jsonl",
                         pose_overrides={"runtime.backend": "onnxruntime"})
    assert [c.name for c in cmds] == [VIDEO, DETECTOR, POSE, RECORDER]
    by = {c.name: c.argv("python") for c in cmds}
    for name in (VIDEO, DETECTOR, POSE):
        assert Path(by[name][by[name].index("--params-file") + 1]) == pose_yaml.resolve()
    assert by[VIDEO][-2:] == ["-p", "source:=v.mp4"]
    assert by[POSE][:3] == ["python", "-m", "tdmi_ros.node"]
    assert by[POSE][-4:] == ["-p", "runtime.allow_untrained:=true", "-p", "runtime.backend:=onnxruntime"]
    assert by[RECORDER] == ["python", "-m", "tdmi_ros.recorder", "--output", "r.jsonl"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("foo: 1\n")
    with pytest.raises(ValueError, match="tdmi_pose"):
        node_commands(bad)


class LaunchFileReader:
    """The ``Node`` actions of ``launch/pose.launch.py`` that start for given launch arguments, read from its
    source: launch arguments and their defaults, ``IfCondition`` of a launch argument or of
    ``NotEqualsSubstitution(argument, "")``, parameter files and dictionaries, program arguments."""

    def __init__(self, source: str) -> None:
        tree = ast.parse(source)
        self.generate = next(f for f in tree.body
                             if isinstance(f, ast.FunctionDef) and f.name == "generate_launch_description")
        self.variables = {  # config = LaunchConfiguration("config")
            stmt.targets[0].id: stmt.value for stmt in self.generate.body if isinstance(stmt, ast.Assign)}
        self.entities = next(n for n in ast.walk(self.generate)
                             if isinstance(n, ast.Call) and _called(n) == "LaunchDescription").args[0].elts
        self.defaults = {_const(e.args[0]): next(k.value for k in e.keywords if k.arg == "default_value")
                         for e in self.entities if _called(e) == "DeclareLaunchArgument"}
        self.args: dict[str, str] = {}

    def nodes(self, args: dict[str, str]) -> list[dict]:
        unknown = set(args) - set(self.defaults)
        assert not unknown, f"not launch arguments: {unknown}"
        self.args = args
        out = []
        for entity in (e for e in self.entities if _called(e) == "Node"):
            kw = {k.arg: k.value for k in entity.keywords}
            if "condition" in kw and self.value(kw["condition"]) != "true":
                continue
            files = [self.value(p) for p in kw.get("parameters", ast.List([])).elts if not isinstance(p, ast.Dict)]
            params = {_const(k): self.value(v) for p in kw.get("parameters", ast.List([])).elts
                      if isinstance(p, ast.Dict) for k, v in zip(p.keys, p.values)}
            out.append({"name": _const(kw["name"]), "executable": _const(kw["executable"]), "params_files": files,
                        "params": params, "args": [self.value(a) for a in kw.get("arguments", ast.List([])).elts],
                        "on_exit": kw["on_exit"].id})
        return out

    def value(self, node: ast.expr) -> str:
        """What a substitution evaluates to for the current arguments."""
        if isinstance(node, ast.Constant):
            return str(node.value)
        if isinstance(node, ast.Name):
            return self.value(self.variables[node.id])
        called, args = _called(node), node.args
        if called == "LaunchConfiguration":
            name = _const(args[0])
            return self.args[name] if name in self.args else self.value(self.defaults[name])
        if called == "IfCondition":
            return self.value(args[0]).lower()
        if called == "NotEqualsSubstitution":
            return str(self.value(args[0]) != self.value(args[1])).lower()
        if called == "EqualsSubstitution":
            return str(self.value(args[0]) == self.value(args[1])).lower()
        raise AssertionError(f"the test does not know {ast.unparse(node)}; extend LaunchFileReader")


def _called(node: ast.AST) -> str | None:
    return node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None


def _const(node: ast.expr) -> str:
    assert isinstance(node, ast.Constant), ast.unparse(node)
    return node.value


@pytest.mark.parametrize("launch_args", [
    {},
    {"video": "assets/videos/vtest.avi", "detector": "true"},
    {"video": "0", "detector": "false", "allow_untrained": "true", "record": "out/poses.jsonl"},
    {"cameras": "[front, left]"},
])
def test_launch_file_and_tdmi_pose_start_the_same_nodes_with_the_same_parameters(repo_root, pose_yaml, launch_args):
    launch = LaunchFileReader((repo_root / "launch" / "pose.launch.py").read_text())
    args = {"config": str(pose_yaml.resolve()), **launch_args}
    launched = launch.nodes(args)
    cli = node_commands(args["config"], video=args.get("video", ""), detector=args.get("detector") == "true",
                        allow_untrained=args.get("allow_untrained") == "true", record=args.get("record", ""),
                        cameras=args["cameras"].strip("[]").split(", ") if args.get("cameras") else None)
    assert [(n["name"], n["executable"]) for n in launched] == [(c.name, c.executable) for c in cli]
    for node, cmd in zip(launched, cli):
        assert node["params_files"] == ([str(cmd.params_file)] if cmd.params_file else []), cmd.name
        assert node["params"] == cmd.params, cmd.name
        assert node["args"] == list(cmd.args), cmd.name
    # the pose node (and the detector, recorder) end the launch when they exit, as they end tdmi-pose
    assert {n["name"]: n["on_exit"] for n in launched}[POSE] == "end_launch"
    # by default the parameters come from the installed package's config
    assert ast.unparse(launch.defaults["config"]) == "PathJoinSubstitution([FindPackageShare('tdmi_ros'), 'config', 'pose.yaml'])"


def test_node_commands_for_several_cameras_in_one_node_or_one_node_each(pose_yaml):
    (one,) = [c for c in node_commands(pose_yaml, cameras=["cam0", "cam1"]) if c.name == POSE]
    assert one.params["cameras"] == "[cam0, cam1]" and one.argv()[-2:] == ["-p", "cameras:=[cam0, cam1]"]
    each = [c for c in node_commands(pose_yaml, cameras=["cam0", "cam1"], node_per_camera=True) if c.name == POSE]
    assert [c.label for c in each] == [f"/cam0/{POSE}", f"/cam1/{POSE}"]
    for cmd, camera in zip(each, ("cam0", "cam1")):
        # in a namespace the file's /**/tdmi_pose section still applies
        argv = cmd.argv()
        assert argv[argv.index("-r") + 1] == f"__ns:=/{camera}" and "--params-file" in argv and "cameras" not in cmd.params


def test_installed_model_files_are_the_configured_defaults(repo_root, pose_yaml):
    """setup.py installs the default pose weights and detector model (found through the package share),
    and not the training-only models."""
    tree = ast.parse((repo_root / "setup.py").read_text())
    function = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "served_model_files")
    namespace: dict = {}
    exec(compile(ast.Module([*[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], function], []),
                 "setup.py", "exec"), namespace)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(repo_root)
        installed = namespace["served_model_files"]()
    config = yaml.safe_load(pose_yaml.read_text())
    expected = {node_parameters(config, POSE)["runtime"]["weights"], node_parameters(config, DETECTOR)["model_path"]}
    assert set(installed) == expected
    assert all((repo_root / f).is_file() for f in installed)
