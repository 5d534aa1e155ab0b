"""The README's first command: ``tdmi-demo`` on the bundled held-out video with the shipped weights.

Runs the real demo (four processes over loopback DDS) on the first frames of the clip and checks what
a user gets: a summary with one /poses message per frame, an annotated video, and skeletons from the
trained model (confident joints inside the image), not random-weight noise.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_runs_end_to_end_with_shipped_weights(repo_root: Path, ros_env: dict[str, str], tmp_path: Path) -> None:
    video = repo_root / "assets" / "videos" / "pose2sim_cam04.mp4"
    assert video.is_file(), "run `make setup`: it fetches the demo videos"
    frames = 16
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "tdmi_ros.demo", "--out", str(out), "--max-frames", str(frames), "--rate-hz", "8"],
        env=ros_env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "TDMI-ROS demo" in proc.stdout

    summary = json.loads((out / "summary.json").read_text())
    log = proc.stdout[-3000:] + proc.stderr[-6000:]
    assert summary["video_frames_published"] == frames, log
    assert summary["poses_messages"] == frames, log  # every frame, the last delta ones flushed at the end
    assert summary["frames_with_persons"] == frames and summary["distinct_track_ids"] == 2
    # one score threshold (the detector's): every person it found got a skeleton
    assert summary["skeletons_for_them"] == summary["detector_boxes"] > 0

    records = [json.loads(line) for line in (out / "poses.jsonl").read_text().splitlines()]
    assert [r["stamp_ns"] for r in records] == sorted(r["stamp_ns"] for r in records)
    keypoints = np.array([s["keypoints"] for r in records for s in r["skeletons"]])  # [P, 17, 3]
    width, height = 540, 953  # the clip is 1088x1920, published resized to width 540
    assert (keypoints[..., 0] >= 0).all() and (keypoints[..., 0] <= width).all()
    assert (keypoints[..., 1] >= 0).all() and (keypoints[..., 1] <= height).all()
    # trained weights: most joints of these two clearly visible people are confident
    assert np.median(keypoints[..., 2]) > 0.4

    video_out = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert int(video_out.get(cv2.CAP_PROP_FRAME_COUNT)) == summary["annotated_frames"] > 0
    assert (out / "frame.jpg").is_file()
