"""Rig calibration files: pose2sim's Qualisys ``Calib.qca.txt`` reader, and a JSON writer/reader.

``read_qca`` converts the Qualisys XML the way pose2sim's ``calib_qca_fun`` does (binning factor 1):
intrinsics are stored in 1/64 pixel units on the sensor, so ``K`` takes ``focalLengthU/V`` and
``centerPointU/V`` divided by 64, minus the video window's ``left``/``top``; the distortion
``[k1, k2, p1, p2]`` is divided by 64 as well (pose2sim does so; it makes the lens nearly ideal);
the image size is the ``fov_video`` window. The ``transform`` is the camera pose in the world (mm):
pose2sim inverts it to world → camera and turns the camera by π about its x axis (Qualisys looks
along −z with y up; OpenCV along +z with y down). Only video cameras (model "video" or "none") are
kept, in natural order of their serial.

The JSON file holds the same fields as pose2sim's ``Calib.toml``: ``name``, ``size``, ``matrix``,
``distortions``, ``rotation`` (Rodrigues vector) and ``translation`` (metres).
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from tdmi_core.eval.multiview.camera import Camera

CALIBRATION_FORMAT = "tdmi-multiview-calibration/1"
_QCA_UNITS_PER_PIXEL = 64.0


def _natural_key(text: str) -> list[int | str]:
    """``cam2`` before ``cam10``: digits compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _rotation_about_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _qca_camera(node: ET.Element) -> Camera:
    window = node.find("fov_video")
    intrinsic = node.find("intrinsic")
    transform = node.find("transform")
    if window is None or intrinsic is None or transform is None:
        raise ValueError(f"camera {node.get('serial')!r} lacks fov_video, intrinsic or transform")
    left, top = float(window.get("left")), float(window.get("top"))
    size = (round(float(window.get("right")) - left + 1), round(float(window.get("bottom")) - top + 1))

    def intr(key: str) -> float:
        return float(intrinsic.get(key)) / _QCA_UNITS_PER_PIXEL

    K = np.array(
        [
            [intr("focalLengthU"), 0.0, intr("centerPointU") - left],
            [0.0, intr("focalLengthV"), intr("centerPointV") - top],
            [0.0, 0.0, 1.0],
        ]
    )
    dist = np.array([intr(f"radialDistortion{i}") for i in (1, 2)] + [intr(f"tangentalDistortion{i}") for i in (1, 2)])
    # pose2sim transposes r11..r33 (read by row) into camera → world, then inverts it back: world → camera
    # is the matrix as written.
    world_to_cam = np.array([float(transform.get(f"r{i}{j}")) for i in (1, 2, 3) for j in (1, 2, 3)]).reshape(3, 3)
    position_m = np.array([float(transform.get(axis)) for axis in "xyz"]) / 1000.0
    flip = _rotation_about_x(np.pi)
    R = flip @ world_to_cam
    t = flip @ (-world_to_cam @ position_m)
    return Camera(name=node.get("serial", ""), size=size, K=K, dist=dist, R=R, t=t)


def read_qca(path: str | Path) -> list[Camera]:
    """Read a Qualisys ``.qca.txt`` calibration as pose2sim converts it (see the module docstring)."""
    root = ET.parse(path).getroot()
    nodes = [
        node
        for node in root.findall("cameras/camera")
        if any(model in node.get("model", "").lower() for model in ("video", "none"))
    ]
    if not nodes:
        raise ValueError(f"{path}: no video camera in the calibration")
    cameras = [_qca_camera(node) for node in nodes]
    return sorted(cameras, key=lambda camera: _natural_key(camera.name))


def save_calibration(cameras: list[Camera], path: str | Path) -> None:
    """Write cameras as JSON (pose2sim ``Calib.toml`` fields; rotation as a Rodrigues vector)."""
    records = [
        {
            "name": camera.name,
            "size": list(camera.size),
            "matrix": camera.K.tolist(),
            "distortions": camera.dist.tolist(),
            "rotation": Rotation.from_matrix(camera.R).as_rotvec().tolist(),
            "translation": camera.t.tolist(),
        }
        for camera in cameras
    ]
    Path(path).write_text(json.dumps({"format": CALIBRATION_FORMAT, "cameras": records}, indent=1))


def load_calibration(path: str | Path) -> list[Camera]:
    """Read cameras from a JSON file written by ``save_calibration``, or a Qualisys ``.qca.txt``."""
    path = Path(path)
    if not path.name.endswith(".json"):
        return read_qca(path)
    data = json.loads(path.read_text())
    if data.get("format") != CALIBRATION_FORMAT:
        raise ValueError(f"{path}: not a {CALIBRATION_FORMAT} file")
    return [
        Camera(
            name=record["name"],
            size=(int(record["size"][0]), int(record["size"][1])),
            K=np.asarray(record["matrix"], dtype=float),
            dist=np.asarray(record["distortions"], dtype=float),
            R=Rotation.from_rotvec(record["rotation"]).as_matrix(),
            t=np.asarray(record["translation"], dtype=float),
        )
        for record in data["cameras"]
    ]
