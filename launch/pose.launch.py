"""Launch the TDMI pose node (+ optional video publisher, detector) from config/pose.yaml.

For ROS 2 installs with ``ros2 launch`` (apt). pip users run ``tdmi-pose``, which starts exactly the
same processes: both build them with ``tdmi_ros.launch_cli.node_commands``.

    ros2 launch launch/pose.launch.py config:=config/pose.yaml video:=assets/videos/vtest.avi detector:=true

Arguments: ``config`` (parameter YAML; default ./config/pose.yaml, else the package's installed copy), ``video`` (file or camera index; empty = the YAML's
``enabled``), ``detector`` (true/false/auto = the YAML), ``allow_untrained`` (testing only: the pose node's
``runtime.allow_untrained``),
``record`` (JSON-lines output file; empty = no recorder), ``cameras`` (comma-separated camera
namespaces served by one node, persons batched across cameras; empty = one camera on the plain
topics), ``node_per_camera`` (true: one pose node per camera instead). Topics are relative: push a
namespace or remap at the call site. The pose node configures and activates itself (lifecycle autostart).
"""
from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration


def _processes(context: LaunchContext) -> list[ExecuteProcess]:
    from tdmi_ros.launch_cli import default_config_path, node_commands

    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    detector = {"true": True, "false": False}.get(arg("detector").lower())
    overrides = {"runtime.allow_untrained": "true"} if arg("allow_untrained").lower() == "true" else {}
    commands = node_commands(
        arg("config") or default_config_path(), video=arg("video") or None, detector=detector, pose_overrides=overrides,
        record=arg("record") or None, cameras=[c for c in arg("cameras").split(",") if c] or None,
        node_per_camera=arg("node_per_camera").lower() == "true",
    )
    return [
        ExecuteProcess(cmd=cmd.argv, name=cmd.name, output="screen", sigterm_timeout="10", sigkill_timeout="5")
        for cmd in commands
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value="",
                              description="parameter YAML ('' = ./config/pose.yaml, else the installed config/pose.yaml)"),
        DeclareLaunchArgument("video", default_value="", description="video file or camera index ('' = YAML)"),
        DeclareLaunchArgument("detector", default_value="auto", description="true | false | auto (= YAML)"),
        DeclareLaunchArgument("allow_untrained", default_value="false",
                              description="testing only: run an untrained model (runtime.allow_untrained)"),
        DeclareLaunchArgument("record", default_value="", description="JSON-lines file for /poses ('' = off)"),
        DeclareLaunchArgument("cameras", default_value="",
                              description="comma-separated camera namespaces for one batched node ('' = one camera)"),
        DeclareLaunchArgument("node_per_camera", default_value="false", description="true: one pose node per camera"),
        OpaqueFunction(function=_processes),
    ])
