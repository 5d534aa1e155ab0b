"""Predict poses over a PoseTrack split with detector boxes and write official PoseTrack json files.

One prediction file per sequence, named like its ground-truth file (both evaluation kits pair files by
name and frames by position), written by ``tdmi_core.eval.formats.write_posetrack18_predictions``.
Training validation scores its mAP with these functions; ``tdmi_core.tools.predict`` is the CLI.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from tdmi_core.data.dataset import PoseTrackWindowDataset, detection_sample_refs, loader_worker_kwargs
from tdmi_core.data.detections import read_detections
from tdmi_core.data.posetrack import VideoRecord
from tdmi_core.eval.formats import PosePrediction, write_posetrack18_predictions
from tdmi_core.eval.posetrack import evaluate_dirs
from tdmi_core.geometry import invert_affine, transform_points
from tdmi_core.models import TDMI, ModelConfig

logger = logging.getLogger(__name__)


def gt_images(video: VideoRecord) -> list[dict[str, Any]]:
    """The GT file's frames in file order as ``{"id", "file_name"}`` (what the writer pairs by position).

    PoseTrack18/21 files: their ``images`` list. PoseTrack2017 annolist files: their ``annolist`` entries
    (labelled frames only), numbered by position.
    """
    with open(video.source, "r", encoding="utf-8") as handle:
        data = json.load(handle)
    if "annolist" in data:
        return [{"id": i, "file_name": entry["image"][0]["name"]} for i, entry in enumerate(data["annolist"])]
    return [{"id": img["id"], "file_name": img["file_name"]} for img in data["images"]]


def predict_batch_keypoints(model: TDMI, batch: dict[str, Any], codec, device: torch.device, amp: bool) -> tuple[np.ndarray, np.ndarray]:
    """Run the model on a collated batch; joints in source-image pixels.

    Returns:
        ``coords[B, K, 2]`` (x, y) image pixels and ``scores[B, K]`` heatmap peaks.
    """
    frames = batch["frames"].to(device, non_blocking=True)
    with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
        heatmaps = model(frames)
    coords, scores = codec.decode(heatmaps.float().cpu().numpy())
    affines = batch["affine"].numpy().astype(np.float64)
    image_xy = np.stack([transform_points(coords[i].astype(np.float64), invert_affine(affines[i])) for i in range(len(coords))])
    return image_xy, scores


@torch.no_grad()
def predict_split(
    model: TDMI,
    model_cfg: ModelConfig,
    videos: Sequence[VideoRecord],
    image_root: str | Path,
    detections: dict,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    amp: bool = False,
    labelled_only: bool = True,
    box_padding: float = 1.25,
    sigma: float = 3.0,
) -> dict[int, list[tuple[int, np.ndarray, float]]]:
    """Pose for every detector box on the videos' (labelled) frames.

    Returns:
        ``{video_index: [(frame_index, keypoints[K, 3] (x_px, y_px, score), box_score), ...]}``.
    """
    device = torch.device(device)
    refs = detection_sample_refs(videos, detections, labelled_only)
    dataset = PoseTrackWindowDataset(videos, image_root, refs, model_cfg.input_size_hw, model_cfg.heatmap_size_hw,
                                     sigma, model_cfg.delta, box_padding)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, **loader_worker_kwargs(num_workers))
    model = model.to(device).eval()
    out: dict[int, list[tuple[int, np.ndarray, float]]] = defaultdict(list)
    for batch in loader:
        xy, scores = predict_batch_keypoints(model, batch, dataset.codec, device, amp)
        for i in range(len(xy)):
            kps = np.concatenate([xy[i], scores[i][:, None]], axis=1)
            out[int(batch["video_index"][i])].append((int(batch["frame_index"][i]), kps, float(batch["score"][i])))
    logger.info("predicted %d boxes on %d videos", len(refs), len(out))
    return dict(out)


def write_predictions(
    videos: Sequence[VideoRecord], predictions: dict[int, list[tuple[int, np.ndarray, float]]], output_dir: str | Path
) -> list[Path]:
    """One official PoseTrack18-format json per video, named like its GT file (every GT frame listed)."""
    output_dir = Path(output_dir)
    written = []
    for v, video in enumerate(videos):
        images = gt_images(video)
        id_of = {img["file_name"]: img["id"] for img in images}
        per_frame: dict[int, int] = defaultdict(int)
        preds = []
        for frame_index, kps, score in predictions.get(v, []):
            name = video.frames[frame_index].file_name
            if name not in id_of:
                continue  # frame not in the GT file (2017 files list labelled frames only)
            track_id = per_frame[frame_index]  # unique per frame, as the DCPose family writes them
            per_frame[frame_index] += 1
            preds.append(PosePrediction(image_id=id_of[name], keypoints=kps, score=score, track_id=track_id))
        written.append(write_posetrack18_predictions(output_dir / Path(video.source).name, images, preds))
    return written


def evaluation_kit(videos: Sequence[VideoRecord]) -> str:
    """The official kit for these annotations: PoseTrack21's for PoseTrack21 files, else poseval's."""
    return "posetrack21" if videos and videos[0].fmt == "posetrack21" else "posetrack18"


def evaluate_map(model: TDMI, model_cfg: ModelConfig, cfg, videos: Sequence[VideoRecord], device: torch.device,
                 output_dir: Path) -> float:
    """Predict the validation split with ``cfg.val_detections``, write the json files to ``output_dir`` and
    score them with ``tdmi_core.eval`` (returns the official total mAP)."""
    detections = read_detections(cfg.val_detections, cfg.val_detection_threshold)
    preds = predict_split(model, model_cfg, videos, cfg.val_image_root, detections, cfg.batch_size, device,
                          cfg.num_workers, cfg.amp and device.type == "cuda", True, cfg.box_padding, cfg.sigma)
    write_predictions(videos, preds, output_dir)
    gt_dir = Path(cfg.val_annotations)
    result = evaluate_dirs(gt_dir if gt_dir.is_dir() else gt_dir.parent, output_dir, evaluation_kit(videos))
    logger.info("val mAP %.2f (%s kit, %d frames)", result.total, result.kit, result.num_frames)
    return float(result.total)
