#!/usr/bin/env bash
# The README's first command (after set-up): the full pose pipeline on a bundled real video.
# Extra arguments go to tdmi-demo (see `tdmi-demo --help`), e.g. --video FILE --max-frames 50.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. scripts/env.sh
export ROS_LOG_DIR="${ROS_LOG_DIR:-$(mktemp -d)}"
exec tdmi-demo "$@"
