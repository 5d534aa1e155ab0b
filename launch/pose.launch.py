"""Launch the TDMI pose node, and optionally a video publisher, the person detector and a recorder.

    ros2 launch tdmi_ros pose.launch.py
    ros2 launch tdmi_ros pose.launch.py video:=/path/video.mp4 detector:=true
    ros2 launch tdmi_ros pose.launch.py config:=my.yaml record:=poses.jsonl
    ros2 launch tdmi_ros pose.launch.py 'cameras:=[front, left]'   # one node, persons batched across cameras

Arguments: ``config`` (parameter YAML; default: the package's config/pose.yaml), ``video`` (file or
camera index: starts the video publisher), ``detector`` (true: starts the detector),
``allow_untrained`` (testing only: the pose node's ``runtime.allow_untrained``), ``record``
(JSON-lines file: starts the recorder), ``cameras`` (a list of camera namespaces one pose node serves:
its ``cameras`` parameter; empty = the YAML's). Launch arguments override the YAML. For one node per
camera instead, include this file once per camera under ``PushRosNamespace`` (docs/ros.md). Topics are relative, so
an including launch file can push a namespace and set remaps. The pose node is essential: when it
exits the launch ends, and any node that fails makes ``ros2 launch`` exit non-zero.

pip installs (no ``ros2 launch``) run ``tdmi-pose``, which starts the same nodes with the same
parameters (``tdmi_ros.launch_cli.node_commands``; a test compares the two).
"""
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, Shutdown
from launch.conditions import IfCondition
from launch.events.process import ProcessExited
from launch.substitutions import EqualsSubstitution, LaunchConfiguration, NotEqualsSubstitution, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def end_launch(event: ProcessExited, context: LaunchContext) -> list[Shutdown]:
    """An essential node exited: end the launch (a failure raises, the only way to a non-zero exit code)."""
    fail_on_error(event, context)
    return [Shutdown(reason=f"{event.process_name} exited")]


def fail_on_error(event: ProcessExited, context: LaunchContext) -> None:
    """A node failed: `ros2 launch` logs the error, stops every node and exits 1."""
    if event.returncode != 0:
        raise RuntimeError(f"{event.process_name} exited with code {event.returncode}")


def generate_launch_description() -> LaunchDescription:
    config = LaunchConfiguration("config")
    video = LaunchConfiguration("video")
    record = LaunchConfiguration("record")
    cameras = LaunchConfiguration("cameras")
    allow_untrained = LaunchConfiguration("allow_untrained")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=PathJoinSubstitution([
            FindPackageShare("tdmi_ros"), "config", "pose.yaml"]), description="parameter YAML of every node"),
        DeclareLaunchArgument("video", default_value="", description="video file or camera index: start the video publisher"),
        DeclareLaunchArgument("detector", default_value="false", description="true: start the person detector"),
        DeclareLaunchArgument("allow_untrained", default_value="false",
                              description="testing only: run an untrained model (runtime.allow_untrained)"),
        DeclareLaunchArgument("record", default_value="", description="JSON-lines file: record the poses"),
        DeclareLaunchArgument("cameras", default_value="",
                              description="camera namespaces one pose node serves, e.g. [front, left] ('' = the YAML's)"),
        Node(package="tdmi_ros", executable="video_publisher", name="tdmi_video_publisher",
             parameters=[config, {"source": video}], condition=IfCondition(NotEqualsSubstitution(video, "")),
             output="screen", on_exit=fail_on_error),  # ends by itself at the end of a file
        Node(package="tdmi_ros", executable="detector_node", name="tdmi_detector",
             parameters=[config], condition=IfCondition(LaunchConfiguration("detector")),
             output="screen", on_exit=end_launch),
        # the pose node, with the YAML's cameras or with the launch argument's (a list parameter cannot be "unset")
        Node(package="tdmi_ros", executable="pose_node", name="tdmi_pose",
             parameters=[config, {"runtime.allow_untrained": allow_untrained}],
             condition=IfCondition(EqualsSubstitution(cameras, "")),
             output="screen", on_exit=end_launch, sigterm_timeout="10"),  # the model's teardown needs a moment
        Node(package="tdmi_ros", executable="pose_node", name="tdmi_pose",
             parameters=[config, {"runtime.allow_untrained": allow_untrained, "cameras": cameras}],
             condition=IfCondition(NotEqualsSubstitution(cameras, "")),
             output="screen", on_exit=end_launch, sigterm_timeout="10"),
        Node(package="tdmi_ros", executable="recorder", name="tdmi_recorder",
             arguments=["--output", record], condition=IfCondition(NotEqualsSubstitution(record, "")),
             output="screen", on_exit=end_launch),
    ])
