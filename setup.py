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
        ],
    },
)
