# Source this to use the venv by hand:  . scripts/env.sh
# It activates .venv and points ament at it. DDS settings are left as they are (yours),
# except when TDMI_LOOPBACK=1, which keeps all DDS traffic on 127.0.0.1 as tests and demos do.
_tdmi_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$_tdmi_repo/.venv/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
if [ "${TDMI_LOOPBACK:-0}" = 1 ]; then
  export FASTDDS_DEFAULT_PROFILES_FILE="$_tdmi_repo/config/fastdds-loopback.xml"
  export ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT
  export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
  export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 101) + 1 ))}"
fi
unset _tdmi_repo
