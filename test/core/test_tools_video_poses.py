"""tdmi_core.tools.video_poses: a real video through the node's pipeline offline, every frame, in order."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tdmi_core.tools.video_poses import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_every_frame_of_a_video_gets_poses_in_order(tmp_path: Path) -> None:
    video = REPO_ROOT / "assets" / "videos" / "vtest.avi"
    if not video.is_file():
        pytest.skip("no vtest.avi: run scripts/fetch_assets.py --only vtest")
    out = tmp_path / "poses.jsonl"
    frames = 8
    assert main(["--video", str(video), "--out", str(out), "--config", str(REPO_ROOT / "config" / "pose.yaml"),
                 "--weights", str(REPO_ROOT / "weights" / "tdmi_lite.pt"), "--threads", "1", "--start", "636",
                 "--max-frames", str(frames), "--min-score", "0.15", "--queue-depth", "1"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(frames))  # none skipped, the last delta flushed
    people = [s for r in records for s in r["skeletons"]]
    assert len(people) >= frames  # vtest has several walking people in every frame
    keypoints = np.array([s["keypoints"] for s in people])
    assert keypoints.shape[1:] == (17, 3) and np.all((keypoints[..., 2] >= 0) & (keypoints[..., 2] <= 1.5))
    assert np.all((keypoints[..., 0] > -50) & (keypoints[..., 0] < 768 + 50))  # near the 768x576 image
