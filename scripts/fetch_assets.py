#!/usr/bin/env python3
"""Fetch the demo/distillation videos from the package registries into ``assets/videos/``.

Called by set-up (``make setup``); also usable by hand::

    python scripts/fetch_assets.py                 # fetch what is missing, verify everything
    python scripts/fetch_assets.py --check         # verify only; exit 1 if anything is missing/wrong
    python scripts/fetch_assets.py --only vtest    # one source (pose2sim, sports2d, vtest, musicalgestures)

Sources (licences in docs/teacher-dataset.md):

- PyPI wheel ``pose2sim==0.10.49`` (BSD-3-Clause): ``Pose2Sim/Demo_MultiPerson/videos/cam01..04.mp4``
- PyPI wheel ``sports2d==0.8.34`` (BSD-3-Clause): ``Sports2D/Demo/demo.mp4``
- Debian package ``opencv-doc`` (Apache-2.0 AND BSD-3-Clause): ``.../examples/data/vtest.avi``
- PyPI wheel ``musicalgestures==1.32.0`` (GPL-3.0): ``musicalgestures/examples/dancer.avi``, ``pianist.avi``
  (training footage of the default model only)

pose2sim's Demo_MultiPerson (4 calibrated cameras, and its ``Calib.qca.txt``) is validation-only: no
training run may read it (docs/teacher-dataset.md).

Wheels come through ``python -m pip download`` and the Debian package through ``apt-get download``,
so whatever index/mirror those tools are configured with is used: no registry host is written here.
Every file is checked against its SHA-256; present, matching files are skipped (idempotent).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DEST = REPO_DIR / "assets" / "videos"
# Where an installed opencv-doc keeps the clip; used instead of downloading when present.
OPENCV_DOC_VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


@dataclasses.dataclass(frozen=True)
class Asset:
    """One file taken out of one registry package."""

    name: str  # file name under the destination directory
    source: str  # "pose2sim" | "sports2d" | "vtest" | "musicalgestures" (group for --only)
    kind: str  # "pypi" | "deb"
    package: str  # pip requirement ("name==version") or Debian package name
    member: str  # path inside the wheel / the Debian package's data tarball
    sha256: str
    size_bytes: int


ASSETS: tuple[Asset, ...] = (
    Asset("pose2sim_cam01.mp4", "pose2sim", "pypi", "pose2sim==0.10.49",
          "Pose2Sim/Demo_MultiPerson/videos/cam01.mp4",
          "543cee6a4c2c2b52dc9eac9137ee63d14f1f84e706a9a7264769edcb11e5ea53", 764061),
    Asset("pose2sim_cam02.mp4", "pose2sim", "pypi", "pose2sim==0.10.49",
          "Pose2Sim/Demo_MultiPerson/videos/cam02.mp4",
          "8895092a7cf26359205a427b7ac2f4a935c2e0bd36d9b7a5140cb33faa468a6b", 610385),
    Asset("pose2sim_cam03.mp4", "pose2sim", "pypi", "pose2sim==0.10.49",
          "Pose2Sim/Demo_MultiPerson/videos/cam03.mp4",
          "d3daf48cdf9f5603868ddb99166ddaf9b12279e7ce968922926560d5fd3f0c99", 801091),
    Asset("pose2sim_cam04.mp4", "pose2sim", "pypi", "pose2sim==0.10.49",
          "Pose2Sim/Demo_MultiPerson/videos/cam04.mp4",
          "1490149dc40e7301fa5ceae23862b044ba5c398a8b2a40df21ed894702728c09", 877130),
    Asset("pose2sim_Calib.qca.txt", "pose2sim", "pypi", "pose2sim==0.10.49",
          "Pose2Sim/Demo_MultiPerson/calibration/Calib.qca.txt",
          "fd90e4bbae3278ef1dc0cdd42a34ee06bf88286f628a02c00a29407aa39e34c5", 4843),
    Asset("sports2d_demo.mp4", "sports2d", "pypi", "sports2d==0.8.34",
          "Sports2D/Demo/demo.mp4",
          "d9a66417185647b112304b57093f0c180f37a768e6a14daca75ca541f3b78039", 3968304),
    Asset("vtest.avi", "vtest", "deb", "opencv-doc",
          "./usr/share/doc/opencv-doc/examples/data/vtest.avi",
          "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf", 8131690),
    Asset("mg_dancer.avi", "musicalgestures", "pypi", "musicalgestures==1.32.0",
          "musicalgestures/examples/dancer.avi",
          "a40f3be55eacad307c1174676e7cc223d1b26ec5b4e773aacd3e085b60bb4483", 2852574),
    Asset("mg_pianist.avi", "musicalgestures", "pypi", "musicalgestures==1.32.0",
          "musicalgestures/examples/pianist.avi",
          "1b17d27c2aba3a3e52f6bab717cc5afa93b39848e528d3743afb16b34b554d39", 10551616),
)
SOURCES: tuple[str, ...] = tuple(dict.fromkeys(a.source for a in ASSETS))


class FetchError(RuntimeError):
    """A registry could not be reached or a download did not match its checksum."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_valid(path: Path, asset: Asset) -> bool:
    return path.is_file() and path.stat().st_size == asset.size_bytes and sha256_of(path) == asset.sha256


def _run(cmd: list[str], cwd: Path, what: str, hint: str) -> None:
    print(f"  $ {' '.join(cmd)}", flush=True)
    try:
        # Output is not captured, so pip's/apt's own progress bars show.
        subprocess.run(cmd, cwd=cwd, check=True)
    except FileNotFoundError as e:
        raise FetchError(f"{what}: '{cmd[0]}' not found. {hint}") from e
    except subprocess.CalledProcessError as e:
        raise FetchError(f"{what} failed (exit {e.returncode}). {hint}") from e


def _download_wheel(requirement: str, tmp: Path) -> Path:
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(tmp), requirement],
         tmp, f"pip download {requirement}",
         "Is the Python package index reachable? Check `pip config list` / PIP_INDEX_URL and the network.")
    name = requirement.split("==")[0].replace("-", "_").lower()
    wheels = [p for p in tmp.glob("*.whl") if p.name.lower().startswith(name)]
    if len(wheels) != 1:
        raise FetchError(f"pip download {requirement} left {len(wheels)} matching wheels in {tmp}, expected 1")
    return wheels[0]


def _download_deb(package: str, tmp: Path) -> Path:
    _run(["apt-get", "download", package], tmp, f"apt-get download {package}",
         "This needs a Debian/Ubuntu system whose apt sources are reachable (run `apt-get update` first), "
         f"or install the package yourself (`apt-get install -y {package}`) and rerun.")
    debs = sorted(tmp.glob(f"{package}_*.deb"))
    if len(debs) != 1:
        raise FetchError(f"apt-get download {package} left {len(debs)} .deb files in {tmp}, expected 1")
    return debs[0]


def _extract_from_wheel(wheel: Path, member: str, out: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        try:
            with zf.open(member) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        except KeyError as e:
            raise FetchError(f"{wheel.name} has no member {member}") from e


def _extract_from_deb(deb: Path, member: str, out: Path) -> None:
    # dpkg-deb streams the data archive as plain tar whatever its inner compression is.
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    found = False
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tf:
        for info in tf:
            if info.name == member:
                src = tf.extractfile(info)
                assert src is not None
                with out.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
                found = True
                break
    # Drain the rest so dpkg-deb exits cleanly instead of dying of a broken pipe.
    while proc.stdout.read(1 << 20):
        pass
    proc.stdout.close()
    if proc.wait() != 0:
        raise FetchError(f"dpkg-deb --fsys-tarfile {deb.name} failed (exit {proc.returncode})")
    if not found:
        raise FetchError(f"{deb.name} has no member {member}")


def fetch(dest: Path, only: set[str] | None = None, check_only: bool = False) -> list[Path]:
    """Make sure every selected asset is in ``dest`` with the right checksum; return their paths."""
    selected = [a for a in ASSETS if only is None or a.source in only]
    dest.mkdir(parents=True, exist_ok=True)
    missing = [a for a in selected if not is_valid(dest / a.name, a)]
    for a in selected:
        state = "missing or wrong checksum" if a in missing else "ok"
        print(f"  {a.name:<22} {state}")
    if check_only:
        if missing:
            raise FetchError(f"{len(missing)} asset(s) missing; run `python scripts/fetch_assets.py`")
        return [dest / a.name for a in selected]

    by_package: dict[tuple[str, str], list[Asset]] = {}
    for a in missing:
        by_package.setdefault((a.kind, a.package), []).append(a)
    for step, ((kind, package), assets) in enumerate(by_package.items(), start=1):
        print(f"[{step}/{len(by_package)}] {package} -> {', '.join(a.name for a in assets)}", flush=True)
        with tempfile.TemporaryDirectory(prefix="tdmi_fetch_") as tmp_str:
            tmp = Path(tmp_str)
            if kind == "pypi":
                archive = _download_wheel(package, tmp)
                extract = _extract_from_wheel
            elif kind == "deb" and OPENCV_DOC_VTEST.is_file() and package == "opencv-doc":
                archive, extract = None, None  # already installed system-wide: copy it
            else:
                archive = _download_deb(package, tmp)
                extract = _extract_from_deb
            for a in assets:
                part = dest / (a.name + ".part")
                if archive is None:
                    shutil.copyfile(OPENCV_DOC_VTEST, part)
                else:
                    extract(archive, a.member, part)
                got = sha256_of(part)
                if got != a.sha256:
                    part.unlink()
                    raise FetchError(f"{a.name}: sha256 {got} from {package} does not match the expected "
                                     f"{a.sha256}; the package changed upstream. Pin the version listed in "
                                     "scripts/fetch_assets.py or update the checksum after checking the clip.")
                part.replace(dest / a.name)
                print(f"  wrote {dest / a.name} ({a.size_bytes / 1e6:.1f} MB, sha256 ok)", flush=True)
    return [dest / a.name for a in selected]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="output directory")
    parser.add_argument("--only", nargs="+", choices=SOURCES, help="fetch only these sources")
    parser.add_argument("--check", action="store_true", help="verify only, download nothing")
    args = parser.parse_args(argv)
    print(f"assets in {args.dest}:")
    try:
        paths = fetch(args.dest, set(args.only) if args.only else None, check_only=args.check)
    except FetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{len(paths)} asset(s) ready in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
