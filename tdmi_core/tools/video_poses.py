"""``python -m tdmi_core.tools.video_poses``: the poses of every frame of a video file, offline.

Frames are read and their people detected on this thread while the pose node's pipeline
(:class:`tdmi_core.runtime.pipeline.PosePipeline`: IoU tracker + streaming estimator on a worker
thread) estimates poses on another, so detection and pose estimation overlap. Offline, the queue
waits instead of skipping: every frame gets its poses (the last ``delta`` edge-padded at the end).

Writes JSON lines, one per frame in order:
``{"frame": i, "skeletons": [{"track_id", "box_xyxy", "box_score", "keypoints": [[x, y, score] x 17], "score"}]}``.

    python -m tdmi_core.tools.video_poses --video assets/videos/vtest.avi --config config/pose.yaml --out poses.jsonl
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from tdmi_core.detection import make_detector
from tdmi_core.runtime.config import load_runtime_config
from tdmi_core.runtime.loading import build_estimator
from tdmi_core.runtime.pipeline import FrameInput, FrameJob, PosePipeline
from tdmi_core.runtime.stats import PipelineStats
from tdmi_core.runtime.types import FramePoses
from tdmi_core.tools.frames import read_frames
from tdmi_core.tracking import IouTracker

_logger = logging.getLogger(__name__)

__all__ = ["main", "video_poses"]


def _record(frame: FramePoses) -> dict[str, Any]:
    return {"frame": frame.token, "skeletons": [
        {"track_id": p.track_id, "box_xyxy": np.round(p.box_xyxy, 2).tolist(), "box_score": round(p.box_score, 4),
         "keypoints": np.round(p.keypoints.astype(np.float64), 3).tolist(), "score": round(p.score, 4)}
        for p in frame.poses
    ]}


def video_poses(frames: Any, detector: Any, estimator: Any, tracker: Any, out: IO[str], queue_depth: int = 4) -> PipelineStats:
    """Detect people in each of ``frames`` (BGR images), estimate their poses, write JSON lines to ``out``.

    Args:
        frames: an iterable of ``[H, W, 3]`` uint8 BGR images.
        detector: anything with ``detect(image) -> Detections`` (``tdmi_core.detection``).
        estimator, tracker: the pipeline's (:class:`~tdmi_core.runtime.estimator.StreamingPoseEstimator`,
            :class:`~tdmi_core.tracking.IouTracker`).
        out: where the JSON lines go (written from the pipeline's threads, in frame order).
        queue_depth: frames detected ahead of pose estimation.

    Returns:
        The pipeline's statistics (frames processed, latencies).
    """
    stats = PipelineStats()
    pipeline = PosePipeline(estimator, lambda: tracker, lambda frame: out.write(json.dumps(_record(frame)) + "\n"), stats,
                            queue_depth=queue_depth, drop_when_full=False)
    pipeline.start()
    try:
        for i, image in enumerate(frames):
            det = detector.detect(image)
            ids = np.full(len(det.scores), -1, np.int64)  # no ids: the pipeline's tracker assigns them
            job = FrameInput(image, det.boxes_xyxy.astype(np.float64), det.scores.astype(np.float64), ids)
            pipeline.submit(FrameJob(token=i, load=lambda job=job: job, received_s=time.monotonic()))
        pipeline.finish()
    finally:
        pipeline.stop()
    if not pipeline.healthy or stats.drops():
        raise RuntimeError(f"pose estimation failed on some frames: {stats.drops()} ({pipeline.last_error})")
    return stats


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m tdmi_core.tools.video_poses``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--video", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="JSON-lines output")
    p.add_argument("--config", default=None, help="YAML with the runtime section (e.g. config/pose.yaml)")
    p.add_argument("--weights", default=None, help="TDMI weights file (default: the config's)")
    p.add_argument("--backend", default=None, choices=("torch", "onnxruntime", "tensorrt"))
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the config's)")
    p.add_argument("--detector", default="movenet", choices=("movenet", "hog"))
    p.add_argument("--min-score", type=float, default=0.25, help="detector score threshold")
    p.add_argument("--start", type=int, default=0, help="first frame index")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--queue-depth", type=int, default=4, help="frames detected ahead of pose estimation")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = {"weights": args.weights, "backend": args.backend, "num_threads": args.threads}
    runtime = load_runtime_config(args.config, **{k: v for k, v in overrides.items() if v is not None})
    estimator, description = build_estimator(runtime)
    detector = make_detector(args.detector, score_threshold=args.min_score)
    _logger.info("%s; detector %s", description, args.detector)
    started = time.perf_counter()
    with args.out.open("w", encoding="utf-8") as out:
        stats = video_poses(read_frames(args.video, args.start, args.max_frames), detector, estimator, IouTracker(),
                            out, args.queue_depth)
    frames = stats.counts().get("processed", 0)
    _logger.info("%d frames in %.1f s; wrote %s", frames, time.perf_counter() - started, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
