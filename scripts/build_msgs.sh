#!/usr/bin/env bash
# Build the tdmi_msgs interface package (msg/) with CMake straight into the active venv,
# against the ROS 2 PyPI wheels (no colcon, no apt ROS). Skips the build when the
# installed messages are newer than every file in msg/.
set -euo pipefail
: "${VIRTUAL_ENV:?activate the venv first (make setup does this)}"
repo=$(cd "$(dirname "$0")/.." && pwd)
stamp="$VIRTUAL_ENV/share/tdmi_msgs/.built"
if [ -f "$stamp" ] && [ -z "$(find "$repo/msg" -newer "$stamp" -type f | head -1)" ]; then
  echo "[setup] tdmi_msgs is up to date"
  exit 0
fi
echo "[setup] building tdmi_msgs (cmake + make, ~1 min)"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV" CMAKE_PREFIX_PATH="$VIRTUAL_ENV"
build="$repo/build/tdmi_msgs"
mkdir -p "$build"
cmake -S "$repo/msg" -B "$build" -DCMAKE_INSTALL_PREFIX="$VIRTUAL_ENV" \
  -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" -DBUILD_TESTING=OFF >"$build/cmake.log" 2>&1 \
  || { cat "$build/cmake.log"; echo "[setup] cmake failed for msg/ (log above)"; exit 1; }
if ! make -C "$build" -j"$(nproc)" install >"$build/make.log" 2>&1; then
  tail -40 "$build/make.log"; echo "[setup] make failed for msg/ (full log: $build/make.log)"; exit 1
fi
"$VIRTUAL_ENV/bin/python" -c "import tdmi_msgs.msg" || { echo "[setup] tdmi_msgs built but does not import"; exit 1; }
touch "$stamp"
echo "[setup] tdmi_msgs installed into the venv"
