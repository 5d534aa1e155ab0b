#!/usr/bin/env bash
# Run the whole test suite (unit + cross-process ROS 2 integration tests) in the venv.
# test/conftest.py puts DDS on loopback with a unique ROS_DOMAIN_ID for the session.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. scripts/env.sh
export ROS_LOG_DIR="${ROS_LOG_DIR:-$(mktemp -d)}"
export PYTHONUNBUFFERED=1
# pytest exits 5 when it collected no test: that is a failure too (set -e passes it on).
exec python -m pytest "$@"
