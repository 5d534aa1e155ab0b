"""Files the package ships (config, weights, detector model): found where the user or the install put them.

A configured path such as ``weights/tdmi_lite.pt`` is taken as the user gives it first (absolute,
or relative to the working directory), then relative to the package's share folder, which is where
colcon and pip install the package's ``config/``, ``weights/`` and ``launch/``
(``<prefix>/share/tdmi_ros``), then relative to the source checkout (editable installs and runs
from a clone have no share folder). So ``ros2 launch`` works from any directory while a user's own
files still win.
"""
from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "tdmi_ros"
CHECKOUT = Path(__file__).resolve().parents[1]  # the source tree, when this module runs from one


def share_dirs() -> list[Path]:
    """Folders that may hold the package's installed data, most specific first."""
    dirs = []
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory(PACKAGE)))
    except (ImportError, LookupError, OSError):  # no ament index (AMENT_PREFIX_PATH unset) or not indexed
        pass
    dirs.append(Path(sys.prefix) / "share" / PACKAGE)
    if (CHECKOUT / "package.xml").is_file():
        dirs.append(CHECKOUT)
    return list(dict.fromkeys(dirs))


def resolve_data_file(path: str | Path, what: str = "file") -> Path:
    """``path`` if it exists, else (relative paths only) the same path under the package's share folders.

    Raises:
        FileNotFoundError: nowhere to be found; the message names every place that was tried.
    """
    given = Path(path).expanduser()
    if given.exists():
        return given
    tried = [given.absolute()]
    if not given.is_absolute():
        for share in share_dirs():
            candidate = share / given
            if candidate.exists():
                return candidate
            tried.append(candidate)
    tried_once = dict.fromkeys(map(str, tried))  # run from the checkout, the working directory is the checkout
    raise FileNotFoundError(f"{what} {str(path)!r} not found (tried {', '.join(tried_once)})")
