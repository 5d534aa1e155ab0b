"""``tdmi-predict``: predict poses over a PoseTrack split with detector boxes and write official PoseTrack json files.

``tdmi-predict --weights model_best.pt --annotations <split dir> --image-root <root>
--detections <DCPose-format boxes> --output-dir <dir>`` (also ``python -m tdmi_core.tools.predict``)
writes one prediction file per sequence, named like its ground-truth file, with
:mod:`tdmi_core.train.predict`; score them with ``tdmi-eval-posetrack``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from tdmi_core.data.detections import read_detections
from tdmi_core.data.posetrack import read_split
from tdmi_core.models import TDMI, ModelConfig
from tdmi_core.train.predict import predict_split, write_predictions

logger = logging.getLogger(__name__)


def load_model_for_prediction(weights: str, checkpoint: str | None = None) -> tuple[TDMI, ModelConfig]:
    """A model from a weights file (``save_weights``) or from a training checkpoint."""
    if checkpoint:
        from tdmi_core.models import build_model
        from tdmi_core.models.configs import model_config_from_dict
        from tdmi_core.train.checkpoint import load_checkpoint

        state = load_checkpoint(checkpoint)
        cfg = model_config_from_dict(state["model_config"])
        model = build_model(cfg)
        model.load_state_dict(state["model"], strict=True)
        return model.eval(), cfg
    from tdmi_core.models.weights import load_weights

    return load_weights(weights)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: predict a split and write the PoseTrack json files."""
    parser = argparse.ArgumentParser(prog="tdmi-predict", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", help="model weights file (model_best.pt / model_final.pt)")
    source.add_argument("--checkpoint", help="training checkpoint (last.pt / best.pt)")
    parser.add_argument("--annotations", required=True, help="GT split directory (one json per sequence)")
    parser.add_argument("--image-root", required=True, help="directory the image paths are relative to")
    parser.add_argument("--detections", required=True, help="DCPose-format person boxes json")
    parser.add_argument("--output-dir", required=True, help="where the prediction json files go")
    parser.add_argument("--format", default="auto", choices=("auto", "posetrack17", "posetrack18", "posetrack21"))
    parser.add_argument("--score-threshold", type=float, default=0.0, help="drop boxes scoring below this")
    parser.add_argument("--all-frames", action="store_true", help="also predict unlabelled frames")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True, help="fp16 autocast on CUDA")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    from tdmi_core.train.ddp import resolve_device

    device = resolve_device(args.device)
    model, model_cfg = load_model_for_prediction(args.weights, args.checkpoint)
    videos = read_split(args.annotations, args.image_root, args.format)
    detections = read_detections(args.detections, args.score_threshold)
    preds = predict_split(model, model_cfg, videos, args.image_root, detections, args.batch_size, device,
                          args.num_workers, args.amp, not args.all_frames)
    written = write_predictions(videos, preds, args.output_dir)
    logger.info("wrote %d prediction files to %s", len(written), args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
