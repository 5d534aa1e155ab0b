#!/usr/bin/env bash
# GPU check: on a CUDA machine, in one run of at most 8 minutes, with every result in a file under OUT:
#   1. install Torch-TensorRT + TensorRT (requirements/gpu.txt, pinned for torch 2.14.1)   -> install.log
#   2. the TensorRT tests (pytest -m gpu)                                                 -> pytest-gpu.log/.xml
#   3. build and cache the TensorRT engines of the paper config and the default model,
#      then load them again from the cache (build and load times)                        -> engines.json, engines/
#   4. tdmi-bench, TensorRT FP16 vs eager torch FP16, 1/5/10 persons: paper config W48 384x288 and the default
#      model (engines from step 3)                                                       -> bench-w48/, bench-default/
#   5. the pose node end to end (ROS 2 over loopback DDS) at 10 persons, TensorRT FP16    -> node-10-persons/
# A step that fails or runs out of its time is recorded in summary.txt and the next one still runs.
#
#   scripts/gpu_check.sh [--out DIR] [--wheels DIR] [--dry-run]
#     --out DIR     results (default outputs/gpu-check)
#     --wheels DIR  install from wheels fetched beforehand where a registry is reachable
#                   (pip download -r requirements/gpu.txt -d DIR), for GPU machines without one
#     --dry-run     no GPU needed: check this script, the files and programs it uses and every command's
#                   arguments, run nothing heavy (what CI and machines without a GPU can check)
# Needs the project's environment (make setup: .venv with torch 2.14.1); run from anywhere.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$repo/outputs/gpu-check"
wheels=""
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$(realpath -m "$2"); shift 2 ;;
    --wheels) wheels=$(realpath -m "$2"); shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

cd "$repo"
# shellcheck source=scripts/env.sh
. scripts/env.sh       # DDS: pytest and tdmi-node-bench keep it on 127.0.0.1 themselves
budget_s=480            # 8 minutes for everything
default_model=tdmi_movenet
engines="$out/engines"
mkdir -p "$out"
summary="$out/summary.txt"
: > "$summary"

# step NAME LIMIT_S COMMAND...: run with a time limit (never past the budget), log to OUT/NAME.log, record the outcome
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((budget_s - SECONDS))
  if [ "$dry_run" = 1 ]; then
    echo "would run ($name, ${limit}s): $*" | tee -a "$summary"
    return 0
  fi
  if [ "$left" -lt 10 ]; then
    echo "$name: SKIPPED (budget spent)" | tee -a "$summary"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local start=$SECONDS rc=0
  timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1 || rc=$?
  local status=ok
  [ "$rc" = 124 ] && status="TIMED OUT after ${limit}s"
  [ "$rc" != 0 ] && [ "$rc" != 124 ] && status="FAILED (exit $rc)"
  echo "$name: $status in $((SECONDS - start))s" | tee -a "$summary"
}

# ---------------------------------------------------------------------------------------------- checks
for f in requirements/gpu.txt requirements/core.txt test/core/test_tensorrt_backend.py config/pose.yaml; do
  [ -f "$f" ] || { echo "gpu_check.sh: missing $f" >&2; exit 2; }
done
python - <<'EOF'  # the programs exist and accept the arguments used below
from tdmi_core.tools.bench import _parser
from tdmi_ros.node_bench import main as node_bench  # noqa: F401  (imports its ROS messages lazily)
_parser().parse_args(["--model", "tdmi_w48_384x288", "--persons", "1", "5", "10", "--backends", "tensorrt"])
EOF
if [ "$dry_run" = 1 ]; then
  bash -n "$0"
  if command -v shellcheck > /dev/null; then shellcheck -x "$0"; else echo "shellcheck not installed: skipped"; fi
else
  nvidia-smi > "$out/nvidia-smi.txt"
  python -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" \
    | tee "$out/torch.txt"
fi

# ---------------------------------------------------------------------------------------------- 1. install
pip_source=()
[ -n "$wheels" ] && pip_source=(--no-index --find-links "$wheels")
step install 240 python -m pip install "${pip_source[@]}" -r requirements/gpu.txt -c requirements/core.txt

# ---------------------------------------------------------------------------------------------- 2. tests
step pytest-gpu 150 python -m pytest -m gpu -q -rs test --junitxml "$out/pytest-gpu.xml"

# ---------------------------------------------------------------------------------------------- 3. engines
# the settings tdmi-bench uses for --persons 1 5 10 (max batch 5 x 10 persons), so step 4 finds them cached
step engines 150 python - "$engines" "$out/engines.json" "$default_model" <<'EOF'
import json, sys, time
from pathlib import Path
from tdmi_core.runtime.backends import build_backend
from tdmi_core.runtime.config import RuntimeConfig
from tdmi_core.runtime.loading import load_model

cache, report, default_model = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
rows = []
for name in ("tdmi_w48_384x288", default_model):
    cfg = RuntimeConfig(model=name, weights="", allow_untrained=True, backend="tensorrt", device="cuda",
                        precision="fp16", opt_batch=5, max_batch=50, cache_dir=str(cache))
    model, model_cfg, _ = load_model(cfg)
    row = {"model": name}
    for phase in ("build", "load_from_cache"):
        start = time.perf_counter()
        build_backend(cfg, model, model_cfg)
        row[f"{phase}_s"] = round(time.perf_counter() - start, 1)
    rows.append(row)
    print(row, flush=True)
report.write_text(json.dumps({"engines": rows, "files": sorted(p.name for p in cache.rglob("*") if p.is_file())}, indent=2))
EOF

# ---------------------------------------------------------------------------------------------- 4. benchmarks
step bench-w48 90 python -m tdmi_core.tools.bench --model tdmi_w48_384x288 --persons 1 5 10 \
  --backends tensorrt torch-cuda-fp16 --frames 10 --cache-dir "$engines" --out "$out/bench-w48"
step bench-default 60 python -m tdmi_core.tools.bench --model "$default_model" --persons 1 5 10 \
  --backends tensorrt torch-cuda-fp16 --frames 30 --cache-dir "$engines" --out "$out/bench-default"

# ---------------------------------------------------------------------------------------------- 5. the node
step node-10-persons 120 python -m tdmi_ros.node_bench windows --model "$default_model" --windows symmetric causal \
  --rates 30 --persons 10 --seconds 15 --warmup-s 5 --out "$out/node-10-persons" \
  -p runtime.backend:=tensorrt -p runtime.device:=cuda -p runtime.precision:=fp16 -p max_persons:=10 \
  -p runtime.opt_batch:=5 -p runtime.max_batch:=50 -p "runtime.cache_dir:=$engines"

echo "gpu_check.sh: done in ${SECONDS}s; results in $out (summary.txt)" | tee -a "$summary"
