#!/usr/bin/env bash
# launch_check.sh: does `ros2 launch tdmi_ros pose.launch.py` work for a ROS 2 user? Passes or fails.
#
# Builds the ROS 2 launch tooling that PyPI lacks (launch, launch_xml, launch_yaml, launch_ros,
# ros2cli, ros2pkg, ros2run, ros2node, ros2topic, ros2param, ros2launch, rosidl_runtime_py and the
# composition_interfaces messages) from upstream sources into a python3.11 venv that holds the
# project's pinned ROS 2 Kilted wheels, builds the committed tree (git HEAD) with colcon as
# docs/install.md says, runs the launch file in the scenarios below and checks each one. Exits 1 if
# any check fails. Not run by CI: CI cannot reach the upstream repositories (it keeps the static
# checks of test/ros/test_config_and_launch.py). About 10 minutes on 2 cores.
#
# usage: scripts/launch_check.sh --upstream DIR [--repo DIR] [--work DIR] [--assets DIR] [--domain N]
#   --upstream DIR  folder holding git repositories (bare or not) of ros2/launch, ros2/launch_ros,
#                   ros2/ros2cli, ros2/rcl_interfaces, ros2/rosidl_runtime_py, as DIR/NAME or
#                   DIR/ros2+NAME/repo. Branch `kilted` if present, else `rolling`, else HEAD.
#   --repo DIR      the project checkout (default: the git top level of the working directory)
#   --work DIR      scratch folder (default: ${TMPDIR:-/tmp}/tdmi-launch-check); its venv is reused
#   --assets DIR    a folder with videos/vtest.avi (the project's fetched assets/); default: REPO/assets
#   --domain N      ROS_DOMAIN_ID for every run (default 77; refused when its ports are in use)
# DDS stays on 127.0.0.1: the project's config/fastdds-loopback.xml + ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT.
#
# Scenarios (each stops the launch as a user would, then checks exit codes and the log):
#   A  from the workspace root, no arguments: the installed weights are found, one SIGINT -> exit 0
#   B  video + detector + recorder: skeletons on the detector's people, `ros2 run tdmi_ros bag_recorder`
#      records the run; one SIGINT -> every node exits 0
#   C  the same stopped by Ctrl-C (SIGINT to the process group)
#   D  included under PushRosNamespace + SetRemap with the user's YAML: topics move, parameters apply
#   E  the pose node killed (-9) while running: the launch ends by itself, non-zero, companions stopped
#   F  the pose node fails at start (no weights): the launch ends non-zero, the detector stopped
#   G  Ctrl-C during the nodes' start-up (three moments): exit 0, no traceback
#   I  one pose node for two cameras (cameras:=[front, left]): namespaced topics, one SIGINT -> exit 0
#   H  what a user inspects: `ros2 pkg executables`, `ros2 launch --show-args`, `ros2 launch --print`
set -euo pipefail

repo="" upstream="" work="${TMPDIR:-/tmp}/tdmi-launch-check" assets="" domain=77
while [ $# -gt 0 ]; do
  case "$1" in
    --repo) repo=$2; shift 2 ;;
    --upstream) upstream=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --assets) assets=$2; shift 2 ;;
    --domain) domain=$2; shift 2 ;;
    -h|--help) sed -n 2,31p "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$repo" ] || repo=$(git rev-parse --show-toplevel)
repo=$(cd "$repo" && pwd)
[ -n "$upstream" ] || { echo "--upstream DIR is required (git repositories of the ROS 2 sources)" >&2; exit 2; }
upstream=$(cd "$upstream" && pwd)
[ -n "$assets" ] || assets="$repo/assets"
vtest=$(cd "$assets/videos" 2>/dev/null && pwd)/vtest.avi
[ -f "$vtest" ] || { echo "no $assets/videos/vtest.avi: run scripts/fetch_assets.py --only vtest" >&2; exit 2; }
mkdir -p "$work"
work=$(cd "$work" && pwd)
say() { printf '\n[check] %s\n' "$*"; }

# ---- 0. the DDS domain must be unused (the project's tests pick 1..101 at random)
if command -v ss >/dev/null; then
  lo=$((7400 + 250 * domain)); hi=$((lo + 249))
  if ss -ulnH | awk '{print $4}' | sed 's/.*://' | awk -v lo=$lo -v hi=$hi '$1>=lo && $1<=hi {f=1} END {exit !f}'; then
    echo "ROS_DOMAIN_ID $domain is in use here (UDP ports $lo-$hi bound): pick another with --domain" >&2; exit 1
  fi
fi

# ---- 1. upstream sources
say "1. upstream sources -> $work/src"
mkdir -p "$work/src"
for name in launch launch_ros ros2cli rcl_interfaces rosidl_runtime_py; do
  g="$upstream/$name"; [ -e "$g" ] || g="$upstream/ros2+$name/repo"
  [ -e "$g" ] || { echo "no git repository for $name under $upstream" >&2; exit 1; }
  ref=HEAD
  for cand in kilted rolling; do
    if git -C "$g" rev-parse --verify -q "$cand^{commit}" >/dev/null; then ref=$cand; break; fi
  done
  rm -rf "$work/src/$name"; mkdir -p "$work/src/$name"
  git -C "$g" archive "$ref" | tar -x -C "$work/src/$name"
  echo "  $name: $ref $(git -C "$g" rev-parse --short "$ref") ($(git -C "$g" log -1 --format=%cs "$ref"))"
done

# ---- 2. venv: the project's pinned wheels + colcon + the upstream pure-Python packages
say "2. venv (python3.11) with requirements/ros.txt, requirements/core.txt, colcon, launch, ros2cli"
[ -x "$work/venv/bin/python" ] || nice -n 10 python3.11 -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
pipq() {  # quiet pip; prints its output (less the local-index location warnings) and fails when pip fails
  local out rc=0
  out=$(nice -n 10 python -m pip install -q "$@" 2>&1) || rc=$?
  printf '%s\n' "$out" | grep -vE '^WARNING: Location|^$' || true
  return $rc
}
pipq -r "$repo/requirements/ros.txt" -r "$repo/requirements/core.txt"
# not `lark`: it overwrites the `lark` module of the pinned lark-parser that rosidl_parser uses
pipq colcon-core colcon-ros colcon-cmake colcon-python-setup-py colcon-package-selection colcon-bash \
  colcon-output colcon-library-path colcon-recursive-crawl colcon-parallel-executor colcon-defaults \
  colcon-package-information colcon-metadata osrf-pycommon argcomplete importlib-metadata
python -c "import lark, sys; sys.exit(lark.__version__ != '0.12.0')" || pipq --force-reinstall --no-deps lark-parser==0.12.0
s="$work/src"
pipq --no-deps --no-build-isolation "$s/launch/launch" "$s/launch/launch_xml" "$s/launch/launch_yaml" \
  "$s/launch_ros/launch_ros" "$s/ros2cli/ros2cli" "$s/ros2cli/ros2pkg" "$s/ros2cli/ros2run" "$s/ros2cli/ros2node" \
  "$s/ros2cli/ros2topic" "$s/ros2cli/ros2param" "$s/launch_ros/ros2launch" "$s/rosidl_runtime_py"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV" CMAKE_PREFIX_PATH="$VIRTUAL_ENV"

# ---- 3. composition_interfaces (launch_ros.actions imports it) with CMake, as the project builds tdmi_msgs
say "3. composition_interfaces (CMake into the venv)"
mkdir -p "$work/cmake"
cat > "$work/cmake/repoint-pywheel-includes.cmake" <<'EOF'
# Same fix as the project's msg/CMakeLists.txt, injected with CMAKE_PROJECT_INCLUDE so upstream
# sources stay as they are: re-point the wheels' /opt/python/... include dirs at this interpreter.
function(_repoint_pywheel_includes)
  find_package(Python3 COMPONENTS Interpreter Development.Module NumPy)
  if(NOT Python3_FOUND)
    return()
  endif()
  get_property(_targets DIRECTORY PROPERTY IMPORTED_TARGETS)
  foreach(_t IN LISTS _targets)
    get_target_property(_inc ${_t} INTERFACE_INCLUDE_DIRECTORIES)
    if(_inc AND "${_inc}" MATCHES "^/opt/python/")
      set_property(TARGET ${_t} PROPERTY INTERFACE_INCLUDE_DIRECTORIES
        "${Python3_INCLUDE_DIRS};${Python3_NumPy_INCLUDE_DIRS}")
    endif()
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _repoint_pywheel_includes)
EOF
if ! python -c "import composition_interfaces.srv" 2>/dev/null; then
  b="$work/build/composition_interfaces"; mkdir -p "$b"
  nice -n 10 cmake -S "$s/rcl_interfaces/composition_interfaces" -B "$b" -DCMAKE_INSTALL_PREFIX="$VIRTUAL_ENV" \
    -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" -DBUILD_TESTING=OFF \
    -DCMAKE_PROJECT_INCLUDE="$work/cmake/repoint-pywheel-includes.cmake" > "$b/cmake.log" 2>&1 \
    || { tail -30 "$b/cmake.log"; exit 1; }
  nice -n 10 make -C "$b" -j"$(nproc)" install > "$b/make.log" 2>&1 || { tail -30 "$b/make.log"; exit 1; }
fi
python -c "import launch_ros.actions, composition_interfaces.srv; print('  launch_ros.actions imports')"

# ---- 4. the committed project in a colcon workspace, as docs/install.md section 2 says
say "4. colcon build --base-paths src/tdmi_ros src/tdmi_ros/msg ($(git -C "$repo" rev-parse --short HEAD))"
ws="$work/ws"
rm -rf "$ws"; mkdir -p "$ws/src/tdmi_ros"
git -C "$repo" archive HEAD | tar -x -C "$ws/src/tdmi_ros"   # what a clone has (tracked files)
(cd "$ws" && nice -n 10 colcon build --base-paths src/tdmi_ros src/tdmi_ros/msg --parallel-workers 1 \
   --event-handlers console_direct- > "$work/colcon-build.log" 2>&1) || { tail -40 "$work/colcon-build.log"; exit 1; }
tail -3 "$work/colcon-build.log"

cat > "$work/env.sh" <<EOF
. "$work/venv/bin/activate"
export AMENT_PREFIX_PATH="\$VIRTUAL_ENV"
. "$ws/install/setup.bash"
export FASTDDS_DEFAULT_PROFILES_FILE="$ws/src/tdmi_ros/config/fastdds-loopback.xml"
export ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT ROS_DOMAIN_ID=$domain RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export ROS_LOG_DIR="$work/logs" OMP_NUM_THREADS=1
EOF
set +u   # colcon's setup.bash reads unset variables
# shellcheck disable=SC1091
. "$work/env.sh"
set -u
share="$ws/install/tdmi_ros/share/tdmi_ros"

# ---- helpers for the runs
cat > "$work/count_poses.py" <<'EOF'
"""Count /poses and /detections for --seconds: detector boxes vs published skeletons in the same frames."""
import argparse, json, time
import rclpy
from rclpy.node import Node
from tdmi_msgs.msg import PersonDetectionArray, Skeleton2DArray

ap = argparse.ArgumentParser()
ap.add_argument("--seconds", type=float, default=30.0)
ap.add_argument("--poses", default="/poses")
ap.add_argument("--detections", default="/detections")
ap.add_argument("--json", required=True)
a = ap.parse_args()
rclpy.init(); n = Node("launch_check_counter")
skeletons, boxes = {}, {}  # stamp -> count
stamp = lambda m: (m.header.stamp.sec, m.header.stamp.nanosec)
n.create_subscription(Skeleton2DArray, a.poses, lambda m: skeletons.__setitem__(stamp(m), len(m.skeletons)), 50)
n.create_subscription(PersonDetectionArray, a.detections, lambda m: boxes.__setitem__(stamp(m), len(m.detections)), 50)
end = time.monotonic() + a.seconds
while time.monotonic() < end:
    rclpy.spin_once(n, timeout_sec=0.2)
both = [s for s in skeletons if s in boxes]  # frames seen on both topics
out = {"poses_msgs": len(skeletons), "poses_with_skeletons": sum(1 for v in skeletons.values() if v),
       "detection_msgs": len(boxes), "frames_on_both": len(both),
       "boxes_in_those": sum(boxes[s] for s in both), "skeletons_in_those": sum(skeletons[s] for s in both)}
print(f"  {a.poses}: {out['poses_msgs']} msgs ({out['poses_with_skeletons']} with skeletons); {a.detections}: "
      f"{out['detection_msgs']} msgs; in the {out['frames_on_both']} frames seen on both: "
      f"{out['boxes_in_those']} detector boxes -> {out['skeletons_in_those']} skeletons")
json.dump(out, open(a.json, "w"))
n.destroy_node(); rclpy.shutdown()
EOF
cat > "$work/ns_wrapper.launch.py" <<'EOF'
"""A user reusing the package's launch file under a namespace, with a remap and their own YAML."""
import os
from launch import LaunchDescription
from launch.actions import GroupAction, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import PushRosNamespace, SetRemap
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    pose_launch = PathJoinSubstitution([FindPackageShare('tdmi_ros'), 'launch', 'pose.launch.py'])
    return LaunchDescription([GroupAction([
        PushRosNamespace('cam1'),
        SetRemap(src='image', dst='/camera/image_raw'),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(pose_launch), launch_arguments={
            'config': os.path.join(os.path.dirname(os.path.abspath(__file__)), 'custom_pose.yaml'),
            'video': os.environ['LAUNCH_CHECK_VIDEO'], 'detector': 'true', 'allow_untrained': 'true'}.items()),
    ])])
EOF
# the user's YAML: the installed one with two pose node parameters changed
sed -e 's/^    poses_topic: poses /    poses_topic: poses_custom /' -e 's/^    max_persons: 8 /    max_persons: 3 /' \
  "$share/config/pose.yaml" > "$work/custom_pose.yaml"
sed 's|^      weights: weights/tdmi_movenet.pt |      weights: weights/not_here.pt |' "$share/config/pose.yaml" > "$work/missing_weights.yaml"

declare -a results=()
check() {  # check "what" command...: record PASS/FAIL of one expectation
  local what=$1; shift
  if "$@" > /dev/null 2>&1; then results+=("PASS  $scenario: $what"); echo "  PASS $what"
  else results+=("FAIL  $scenario: $what"); echo "  FAIL $what"; fi
}
has() { grep -qE -- "$2" "$1"; }
count() { grep -cE -- "$2" "$1" || true; }
json_ge() { python -c "import json,sys; d=json.load(open('$1')); sys.exit(not ($2))"; }

# start_launch NAME CWD ARGS...: `ros2 launch ARGS` in its own process group, SIGINT at its default
# action (a script's background jobs otherwise inherit SIGINT ignored, and ros2 launch keeps it so)
start_launch() {
  scenario=$1; local cwd=$2; shift 2
  log="$work/launch-$scenario.log"
  : > "$log"  # before the job starts: a log left by an earlier check must not answer wait_log
  say "$scenario: (cd ${cwd#"$work"/}; ros2 launch $*)"
  set -m
  (cd "$cwd" && exec nice -n 10 python -c \
    'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' \
    ros2 launch "$@") > "$log" 2>&1 &
  lp=$!
  set +m
}
wait_log() {  # wait_log PATTERN SECONDS: until the log shows PATTERN or the launch ends
  for _ in $(seq "$2"); do has "$log" "$1" && return 0; kill -0 $lp 2>/dev/null || return 1; sleep 1; done
  return 1
}
# stop_launch single|group|none: SIGINT to ros2 launch, to its process group, or wait for it to end
stop_launch() {
  if kill -0 $lp 2>/dev/null; then
    case $1 in single) kill -INT $lp ;; group) kill -INT -- -$lp ;; esac
  fi
  for _ in $(seq 60); do kill -0 $lp 2>/dev/null || break; sleep 1; done
  kill -0 $lp 2>/dev/null && { echo "  launch still running after 60 s: SIGKILL"; kill -KILL -- -$lp; }
  rc=0; wait $lp || rc=$?
  echo "  ros2 launch exit code: $rc"
  grep -E '^\[(INFO|WARNING|ERROR)\] \[|FATAL|active:|Traceback|KeyboardInterrupt|terminate called|Caught exception' "$log" \
    | grep -vE '\] \[launch\]: (All log files|Default logging)' | cut -c1-240 | sed 's/^/  | /' || true
}
all_clean() {  # every process the launch started finished cleanly
  local started; started=$(count "$log" 'process started with pid')
  [ "$started" -ge 1 ] && [ "$(count "$log" 'process has finished cleanly')" -eq "$started" ]
}
no_traceback() { ! has "$log" 'Traceback|KeyboardInterrupt|terminate called|Fatal Python error'; }
graph() {  # nodes and topics as `ros2 node list` / `ros2 topic list` see them
  timeout 30 ros2 node list --no-daemon --spin-time 3 2>/dev/null | tr '\n' ' ' > "$work/nodes-$scenario.txt" || true
  timeout 30 ros2 topic list --no-daemon --spin-time 3 2>/dev/null | tr '\n' ' ' > "$work/topics-$scenario.txt" || true
  echo "  nodes: $(cat "$work/nodes-$scenario.txt")"
  echo "  topics: $(cat "$work/topics-$scenario.txt")"
}
listed() { grep -qE -- "(^| )$2( |$)" "$work/$1-$scenario.txt"; }

# ---- the scenarios
start_launch A-wsroot "$ws" tdmi_ros pose.launch.py
wait_log 'active:|process has died' 90 || true
graph
stop_launch single
check "pose node active with the installed weights" has "$log" "active: weights $share/weights/tdmi_movenet.pt"
check "node /tdmi_pose was up" listed nodes /tdmi_pose
check "one SIGINT: ros2 launch exits 0" test "$rc" -eq 0
check "every node finished cleanly" all_clean
check "no traceback" no_traceback

start_launch B-video-detector-record "$ws" tdmi_ros pose.launch.py video:="$vtest" detector:=true record:="$work/B-poses.jsonl"
wait_log 'active:|process has died' 90 || true
rm -rf "$work/B-bag"
set -m  # a bag of the run, as a user records one next to a launch
ros2 run tdmi_ros bag_recorder --output "$work/B-bag" poses image detections > "$work/B-bag_recorder.log" 2>&1 &
bag_pid=$!
set +m
python "$work/count_poses.py" --seconds 30 --json "$work/B-counts.json" || true
graph
kill -INT -- -$bag_pid; bag_rc=0; wait $bag_pid || bag_rc=$?  # Ctrl-C: ros2 run expects its child to get it too
python - "$work/B-bag" > "$work/B-bag.txt" 2>&1 <<'PY' || true
import sys
from rosbags.rosbag2 import Reader
with Reader(sys.argv[1]) as bag:
    print(" ".join(f"{c.topic}={c.msgcount}" for c in sorted(bag.connections, key=lambda c: c.topic)))
PY
echo "  ros2 run tdmi_ros bag_recorder: exit $bag_rc; $(cat "$work/B-bag.txt")"
stop_launch single
check "ros2 run tdmi_ros bag_recorder recorded /detections, /image, /poses (exit 0)" \
  eval "[ $bag_rc -eq 0 ] && grep -qE '^/detections=[1-9][0-9]* /image=[1-9][0-9]* /poses=[1-9][0-9]*$' '$work/B-bag.txt'"
check "4 nodes started" test "$(count "$log" 'process started with pid')" -eq 4
check "skeletons published" json_ge "$work/B-counts.json" "d['poses_with_skeletons'] > 0"
check "a skeleton for >= 90 % of the detector's boxes" json_ge "$work/B-counts.json" \
  "d['skeletons_in_those'] >= 0.9 * d['boxes_in_those'] > 0"
check "recorder wrote /poses" test -s "$work/B-poses.jsonl"
check "one SIGINT: ros2 launch exits 0" test "$rc" -eq 0
check "every node finished cleanly" all_clean
check "no traceback" no_traceback

start_launch C-ctrl-c "$ws" tdmi_ros pose.launch.py video:="$vtest" detector:=true
wait_log 'active:|process has died' 90 || true
python "$work/count_poses.py" --seconds 10 --json "$work/C-counts.json" || true
stop_launch group
check "skeletons published" json_ge "$work/C-counts.json" "d['poses_with_skeletons'] > 0"
check "Ctrl-C (SIGINT to the group): ros2 launch exits 0" test "$rc" -eq 0
check "every node finished cleanly" all_clean
check "no traceback" no_traceback

export LAUNCH_CHECK_VIDEO="$vtest"
start_launch D-namespace-remap "$ws" "$work/ns_wrapper.launch.py"
wait_log 'active:|process has died' 90 || true
python "$work/count_poses.py" --seconds 15 --poses /cam1/poses_custom --detections /cam1/detections \
  --json "$work/D-counts.json" || true
graph
timeout 30 ros2 node info /cam1/tdmi_pose --no-daemon --spin-time 3 > "$work/D-node-info.txt" 2>&1 || true
for p in max_persons runtime.allow_untrained; do
  timeout 30 ros2 param get /cam1/tdmi_pose "$p" --no-daemon --spin-time 3 > "$work/D-param-$p.txt" 2>&1 || true
  echo "  param $p: $(cat "$work/D-param-$p.txt")"
done
stop_launch single
check "nodes in /cam1" listed nodes /cam1/tdmi_pose
check "detector and video publisher in /cam1" test "$(grep -oE '/cam1/tdmi_(detector|video_publisher)' "$work/nodes-$scenario.txt" | wc -l)" -eq 2
check "topics moved: /cam1/poses_custom (user's YAML), /cam1/detections" \
  eval 'listed topics /cam1/poses_custom && listed topics /cam1/detections'
check "remap: images on /camera/image_raw, no /image or /cam1/image" \
  eval 'listed topics /camera/image_raw && ! listed topics /image && ! listed topics /cam1/image'
check "the pose node subscribes /camera/image_raw" has "$work/D-node-info.txt" '/camera/image_raw: sensor_msgs/msg/Image'
check "user's YAML applies in the namespace: max_persons = 3" has "$work/D-param-max_persons.txt" 'Integer value is: 3'
check "launch argument applies: runtime.allow_untrained = True" has "$work/D-param-runtime.allow_untrained.txt" 'Boolean value is: True'
check "skeletons on /cam1/poses_custom" json_ge "$work/D-counts.json" "d['poses_with_skeletons'] > 0"
check "one SIGINT: ros2 launch exits 0" test "$rc" -eq 0
check "every node finished cleanly" all_clean

start_launch E-pose-node-killed "$ws" tdmi_ros pose.launch.py video:="$vtest" detector:=true
wait_log 'active:|process has died' 90 || true
pose_pid=$(sed -nE 's/.*\[pose_node-[0-9]+\]: process started with pid \[([0-9]+)\].*/\1/p' "$log" | head -1)
echo "  kill -KILL $pose_pid (the pose node)"
[ -n "$pose_pid" ] && kill -KILL "$pose_pid"
stop_launch none
check "the launch ended by itself, non-zero" test "$rc" -ne 0 -a "$rc" -ne 137
check "it says why" has "$log" 'pose_node-[0-9]+ exited with code -9'
check "video publisher and detector finished cleanly" \
  test "$(count "$log" '(video_publisher|detector_node)-[0-9]+\]: process has finished cleanly')" -eq 2

start_launch F-no-weights "$ws" tdmi_ros pose.launch.py config:="$work/missing_weights.yaml" detector:=true
stop_launch none
check "the launch ended by itself, non-zero" test "$rc" -ne 0 -a "$rc" -ne 137
check "the pose node said why" has "$log" "no trained weights: runtime.weights 'weights/not_here.pt' not found"
check "the detector finished cleanly" has "$log" 'detector_node-[0-9]+\]: process has finished cleanly'

# the moments count from the start of the last node (ros2 launch itself needs a second to start, and
# the first ~0.2 s of each node is its interpreter starting, before any program can catch a signal)
for moment in 0.5 1.5 3; do
  start_launch "G-ctrl-c-at-${moment}s" "$ws" tdmi_ros pose.launch.py video:="$vtest" detector:=true
  wait_log 'pose_node-[0-9]+\]: process started' 60 || true
  sleep "$moment"
  stop_launch group
  check "Ctrl-C ${moment} s after the nodes started: ros2 launch exits 0" test "$rc" -eq 0
  check "every node finished cleanly" all_clean
  check "no traceback" no_traceback
done

start_launch I-cameras "$ws" tdmi_ros pose.launch.py "cameras:=[front, left]"
wait_log 'active:|process has died' 90 || true
graph
timeout 30 ros2 param get /tdmi_pose cameras --no-daemon --spin-time 3 > "$work/I-param-cameras.txt" 2>&1 || true
echo "  param cameras: $(cat "$work/I-param-cameras.txt")"
stop_launch single
check "one pose node serves both cameras (cameras launch argument)" has "$work/I-param-cameras.txt" "\\['front', 'left'\\]"
check "each camera's /poses" eval 'listed topics /front/poses && listed topics /left/poses && ! listed topics /poses'
check "one SIGINT: ros2 launch exits 0" test "$rc" -eq 0
check "every node finished cleanly" all_clean

scenario=H-introspection
say "$scenario: ros2 pkg executables tdmi_ros; ros2 launch tdmi_ros pose.launch.py --show-args / --print"
ros2 pkg executables tdmi_ros > "$work/H-executables.txt" 2>&1 || true
ros2 launch tdmi_ros pose.launch.py --show-args > "$work/H-show-args.txt" 2>&1 || true
ros2 launch tdmi_ros pose.launch.py --print > "$work/H-print.txt" 2>&1 || true
sed 's/^/  | /' "$work/H-executables.txt"
check "ros2 run finds pose_node, detector_node, video_publisher, recorder, bag_recorder, bag_player" \
  test "$(grep -cE '^tdmi_ros (pose_node|detector_node|video_publisher|recorder|bag_recorder|bag_player)$' "$work/H-executables.txt")" -eq 6
check "--show-args lists config, video, detector, allow_untrained, record, cameras" \
  test "$(grep -cE "^    '(config|video|detector|allow_untrained|record|cameras)':" "$work/H-show-args.txt")" -eq 6
shows_the_nodes() {  # `ros2 launch --print` lists each Node's executable (the old file showed an OpaqueFunction)
  [ "$(grep -oE "ExecInPkg\(pkg='tdmi_ros', exec='(video_publisher|detector_node|pose_node|recorder)'\)" "$1" | sort -u | wc -l)" -eq 4 ] \
    && ! grep -q OpaqueFunction "$1"
}
check "--print shows the four nodes (no opaque function)" shows_the_nodes "$work/H-print.txt"

say "summary ($(git -C "$repo" rev-parse --short HEAD)); logs in $work"
printf '  %s\n' "${results[@]}"
failed=$(printf '%s\n' "${results[@]}" | grep -c '^FAIL' || true)
echo "  $(( ${#results[@]} - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
