"""tdmi_ros: an ament_python package (colcon) that also installs with pip.

The pure-Python network/runtime (tdmi_core) ships in the same distribution so that one
install gives the node and the offline tools. Messages live in msg/ (package tdmi_msgs,
built with CMake; see docs/install.md).
"""
import re
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "tdmi_ros"


def served_model_files() -> list[str]:
    """The model files config/pose.yaml points at by default (pose weights, detector ONNX).

    Only what serving needs is installed (training-only models stay in the source tree); read
    with a regular expression because a build may not have PyYAML.
    """
    text = Path("config/pose.yaml").read_text()
    return sorted(set(re.findall(r"^\s+(?:weights|model_path):\s*(weights/\S+)", text, flags=re.MULTILINE)))


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["tdmi_ros", "tdmi_ros.*", "tdmi_core", "tdmi_core.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/weights", served_model_files()),
    ],
    include_package_data=True,
    zip_safe=False,
    python_requires=">=3.10",
    maintainer="TDMI-ROS maintainers",
    description="Real-time multi-frame human pose estimation (TDMI) as a ROS 2 node",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            # ROS 2 programs: colcon installs them in lib/tdmi_ros (setup.cfg), where `ros2 run tdmi_ros <name>` and
            # pose.launch.py find them; their entry points hold SIGINT/SIGTERM before the heavy imports
            "pose_node = tdmi_ros.programs:pose_node",
            "detector_node = tdmi_ros.programs:detector_node",
            "video_publisher = tdmi_ros.programs:video_publisher",
            "recorder = tdmi_ros.programs:recorder",
            "bag_recorder = tdmi_ros.programs:bag_recorder",
            "bag_player = tdmi_ros.programs:bag_player",
            # pip users: the launcher (`ros2 launch tdmi_ros pose.launch.py` starts the same nodes) and tools
            "tdmi-pose = tdmi_ros.programs:launcher",
            "tdmi-demo = tdmi_ros.demo:main",
            "tdmi-node-overhead = tdmi_ros.overhead_bench:main",
            "tdmi-node-bench = tdmi_ros.node_bench:main",
            # offline tools (no ROS)
            "tdmi-bench = tdmi_core.tools.bench:main",
            "tdmi-train = tdmi_core.train.__main__:main",
            "tdmi-predict = tdmi_core.tools.predict:main",
            "tdmi-eval-posetrack = tdmi_core.eval.posetrack:main",
            "tdmi-teacher = tdmi_core.data.teacher:main",
            "tdmi-distill = tdmi_core.train.distill:main",
        ],
    },
)
