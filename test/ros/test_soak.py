"""Soak: 10,000 frames (64x48, one moving person, detections published directly) through the pose
node process at a high rate; its resident memory must stay flat and it must keep publishing."""
from __future__ import annotations

import time

import numpy as np
import psutil
import pytest
from ros_harness import StreamProbe, header_for, start_pose_node, synthetic_frame, write_pose_params

from tdmi_ros.conversions import bgr_to_image_msg, boxes_to_detection_msg

pytestmark = [pytest.mark.ros, pytest.mark.slow]

N_FRAMES = 10_000
PERIOD_S = 0.004  # 250 Hz, several times what a 2-core CPU infers: exercises skipping too
WARMUP_FRAMES = 2_000
MAX_GROWTH_MB = 12.0


def test_soak_10000_frames_flat_memory(ros, procs, tmp_path, repo_root):
    node = start_pose_node(procs, write_pose_params(tmp_path, repo_root, diagnostics_period_s=1.0))
    probe = StreamProbe(ros, image_qos_depth=10)
    probe.wait_ready(node, procs)
    proc = psutil.Process(node.pid)
    frames = [synthetic_frame(i) for i in range(20)]  # the block moves with period 20
    rss_mb: list[tuple[int, float]] = []
    t0 = time.monotonic()
    next_t = t0
    for i in range(N_FRAMES):
        img, box = frames[i % 20]
        header = header_for(i, period_ns=4_000_000)
        probe.image_pub.publish(bgr_to_image_msg(img, header))
        probe.det_pub.publish(boxes_to_detection_msg(box[None], np.array([0.9]), header))
        next_t += PERIOD_S
        if i % 500 == 0:
            assert node.poll() is None, procs.log_text(node)
            rss_mb.append((i, proc.memory_info().rss / 2**20))
        # take our subscriptions' messages while waiting for the next frame's time
        ros.executor.spin_once(timeout_sec=0)
        while (delay := next_t - time.monotonic()) > 0:
            ros.executor.spin_once(timeout_sec=delay)
    elapsed = time.monotonic() - t0
    ros.spin_for(2.0)
    rss_mb.append((N_FRAMES, proc.memory_info().rss / 2**20))
    diag = probe.fresh_diagnostics()
    assert node.poll() is None, procs.log_text(node)

    received = int(diag["count/image"])
    processed = int(diag.get("count/processed", 0))
    published = int(diag.get("count/poses", 0))
    after = [(i, m) for i, m in rss_mb if i >= WARMUP_FRAMES]
    growth = max(m for _, m in after) - after[0][1]
    slope_mb_per_10k = float(np.polyfit([i for i, _ in after], [m for _, m in after], 1)[0]) * 10_000
    print(f"\nsoak: {N_FRAMES} frames in {elapsed:.1f} s; node received {received}, processed {processed}, "
          f"published {published}; skipped {diag.get('drop/compute_behind', '0')}; "
          f"RSS {after[0][1]:.1f} -> {rss_mb[-1][1]:.1f} MB (max growth {growth:.1f} MB, "
          f"trend {slope_mb_per_10k:+.1f} MB / 10k frames); inference p50 {diag.get('latency_ms/inference/p50')} ms")
    assert received >= 0.9 * N_FRAMES
    # every paired frame was either inferred or skipped (counted), never queued without bound
    skipped = int(diag.get("drop/compute_behind", 0))
    assert int(diag["count/paired"]) == processed + skipped + int(diag.get("drop/inference_error", 0))
    assert int(diag["queue_capacity"]) == 2
    if skipped:  # falling behind is reported as such while it happens
        from tdmi_ros.diagnostics import diagnostics_to_dict

        assert any("compute behind" in diagnostics_to_dict(d)["message"] for d in probe.diagnostics)
    assert processed >= 0.1 * N_FRAMES and published >= processed - 3
    assert growth < MAX_GROWTH_MB, rss_mb
    assert abs(slope_mb_per_10k) < MAX_GROWTH_MB, rss_mb
    assert len(probe.poses) == published  # every published message reached this process
    assert procs.stop(node) == 0
