"""Configured data files: the user's path first, then the package's installed share folder."""
from __future__ import annotations

from pathlib import Path

import pytest

from tdmi_ros.resources import resolve_data_file


@pytest.fixture
def installed_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An install prefix as colcon leaves it: ament index entry + share/tdmi_ros/weights/model.pt."""
    prefix = tmp_path / "install"
    index = prefix / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / "tdmi_ros").write_text("")
    weights = prefix / "share" / "tdmi_ros" / "weights"
    weights.mkdir(parents=True)
    (weights / "model.pt").write_bytes(b"installed")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return prefix


def test_relative_path_missing_here_is_found_in_the_package_share(installed_prefix):
    assert resolve_data_file("weights/model.pt") == installed_prefix / "share" / "tdmi_ros" / "weights" / "model.pt"


def test_the_users_own_file_wins(installed_prefix):
    Path("weights").mkdir()
    Path("weights/model.pt").write_bytes(b"mine")
    assert resolve_data_file("weights/model.pt").read_bytes() == b"mine"


def test_the_shipped_weights_are_found_from_any_directory_of_a_checkout(installed_prefix, repo_root):
    """Editable installs and runs from a clone have no share folder: the checkout serves."""
    assert resolve_data_file("config/pose.yaml") == repo_root / "config" / "pose.yaml"


def test_missing_files_name_every_place_tried(installed_prefix, tmp_path):
    with pytest.raises(FileNotFoundError, match="runtime.weights 'weights/other.pt' not found") as err:
        resolve_data_file("weights/other.pt", "runtime.weights")
    assert str(installed_prefix / "share" / "tdmi_ros" / "weights" / "other.pt") in str(err.value)
    assert str(tmp_path / "elsewhere" / "weights" / "other.pt") in str(err.value)
    absolute = tmp_path / "nothing.pt"
    with pytest.raises(FileNotFoundError, match=f"tried {absolute}\\)$"):  # absolute: only where it says
        resolve_data_file(absolute)
