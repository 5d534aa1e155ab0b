"""tdmi_ros: an ament_python package (colcon) that also installs with pip.

The pure-Python network/runtime (tdmi_core) ships in the same distribution so that one
install gives the node and the offline tools. Messages live in msg/ (package tdmi_msgs,
built with CMake; see docs/install.md).
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "tdmi_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["tdmi_ros", "tdmi_ros.*", "tdmi_core", "tdmi_core.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    include_package_data=True,
    zip_safe=False,
    python_requires=">=3.10",
    maintainer="TDMI-ROS maintainers",
    description="Real-time multi-frame human pose estimation (TDMI) as a ROS 2 node",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            # ROS 2 side (pip users; `ros2 launch tdmi_ros pose.launch.py` starts the same nodes)
            "tdmi-pose = tdmi_ros.launch_cli:main",
            "tdmi-pose-node = tdmi_ros.node:main",
            "tdmi-video-publisher = tdmi_ros.video_publisher:main",
            "tdmi-detector = tdmi_ros.detector_node:main",
            "tdmi-recorder = tdmi_ros.recorder:main",
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
