"""Memory stays bounded under a flood of the largest images the node accepts: the peak resident
memory of the node process stays under its measured idle base plus the image-path bound derived
from its parameters (tdmi_ros.memory_bound)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import psutil
import pytest
from ros_harness import StreamProbe, header_for, start_pose_node, synthetic_frame, write_pose_params
from sensor_msgs.msg import Image

from tdmi_ros.conversions import bgr_to_image_msg, boxes_to_detection_msg, max_image_bytes
from tdmi_ros.memory_bound import MIB, image_path_bound_bytes
from tdmi_ros.params import PoseNodeConfig

pytestmark = pytest.mark.ros  # (the flood test; the others are pure)

SIDE = 1024
ROUNDS, IMAGES_PER_ROUND, PAIRED_PER_ROUND = 3, 40, 8
# reliable, with a history that holds a whole round (DDS drops nothing, and the history itself
# fills while the node decodes); images wait long for detections (the pairing buffer fills up)
PARAMS = dict(max_image_pixels=SIDE * SIDE, image_qos="reliable", image_qos_depth=IMAGES_PER_ROUND,
              pairing_max_wait_s=20.0, max_persons=8)


def vm_kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith(field + ":"))


def largest_image(header) -> Image:
    """SIDE x SIDE rgba16: max_image_pixels at 8 bytes per pixel, the largest message accepted."""
    msg = Image(header=header, height=SIDE, width=SIDE, encoding="rgba16", is_bigendian=0, step=SIDE * 8)
    msg.data = np.random.default_rng(0).integers(0, 256, SIDE * SIDE * 8, np.uint8).tobytes()
    assert len(msg.data) == max_image_bytes(SIDE * SIDE)
    return msg


def test_flood_of_largest_images_stays_under_the_derived_bound(ros, procs, tmp_path, repo_root):
    node = start_pose_node(procs, write_pose_params(tmp_path, repo_root, **PARAMS))
    probe = StreamProbe(ros, image_qos_depth=IMAGES_PER_ROUND)
    probe.wait_ready(node, procs)
    # warm up (allocator, torch) with small frames until poses come (the first inference is slow:
    # frames sent at once could age out), then measure the idle base and reset the peak
    warm = 0
    while len(probe.poses) < 3:
        assert warm < 200 and node.poll() is None, procs.log_text(node)
        img, box = synthetic_frame(warm)
        probe.image_pub.publish(bgr_to_image_msg(img, header_for(warm)))
        probe.det_pub.publish(boxes_to_detection_msg(box[None], np.array([0.9]), header_for(warm)))
        warm += 1
        ros.spin_for(0.2)
    base_mib = psutil.Process(node.pid).memory_info().rss / MIB
    Path(f"/proc/{node.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS

    cfg = PoseNodeConfig(**PARAMS)
    bound = image_path_bound_bytes(cfg)
    msg = largest_image(header_for(0))
    boxes = np.array([[x, 100, x + 90, 400] for x in range(0, 8 * 120, 120)], dtype=np.float64)
    sent = {"image": warm, "detections": warm}

    def node_counted_all() -> bool:
        diag = probe.last_diagnostics()
        return node.poll() is not None or all(int(diag.get(f"count/{k}", 0)) >= c for k, c in sent.items())

    n = warm + 5
    for _ in range(ROUNDS):
        # images first (they wait for detections, the oldest overflow), then detections for the
        # oldest still waiting: those pair and go to inference while the newer ones keep waiting
        first = n
        for _ in range(IMAGES_PER_ROUND):
            msg.header = header_for(n)
            probe.image_pub.publish(msg)
            n += 1
        sent["image"] += IMAGES_PER_ROUND
        ros.spin_until(node_counted_all, 120.0, "the node to take the images")
        oldest_waiting = first + IMAGES_PER_ROUND - cfg.pairing_max_pending
        for i in range(oldest_waiting, oldest_waiting + PAIRED_PER_ROUND):
            probe.det_pub.publish(boxes_to_detection_msg(boxes, np.full(len(boxes), 0.9), header_for(i)))
        sent["detections"] += PAIRED_PER_ROUND
        ros.spin_until(node_counted_all, 120.0, "the node to take the detections")
    diag = probe.fresh_diagnostics(30.0)
    assert node.poll() is None, procs.log_text(node)
    peak_mib = vm_kib(node.pid, "VmHWM") / 1024
    allowed_mib = base_mib + bound["total"] / MIB
    print(f"\nflood: {ROUNDS * IMAGES_PER_ROUND} images of {SIDE}x{SIDE} rgba16 ({max_image_bytes(SIDE * SIDE) / MIB:.0f} MiB each); "
          f"node counted {diag['count/image']}, paired {diag.get('count/paired')}, processed "
          f"{diag.get('count/processed')}; drops { {k: v for k, v in diag.items() if k.startswith('drop/')} }; "
          f"RSS base {base_mib:.0f} MiB, peak {peak_mib:.0f} MiB, bound {allowed_mib:.0f} MiB "
          f"(base + {bound['total'] / MIB:.0f}); the flood used {(peak_mib - base_mib) / (bound['total'] / MIB):.0%} "
          f"of the image-path bound")
    assert int(diag["count/image"]) == sent["image"]  # the whole flood reached the node
    assert peak_mib <= allowed_mib, (peak_mib, allowed_mib, bound)
    assert procs.stop(node) == 0, procs.log_text(node)


def test_bound_terms_follow_the_parameters():
    defaults = image_path_bound_bytes(PoseNodeConfig())
    assert defaults["total"] == sum(v for k, v in defaults.items() if k != "total")
    assert defaults["annotated_output"] == 0
    pixels = PoseNodeConfig().max_image_pixels
    # messages wait undecoded (pairing, queue + the worker's), the temporal window holds decoded frames
    assert defaults["pairing"] + defaults["inference_queue"] == 8 * pixels * ((30 + 1) + (2 + 1))
    assert defaults["temporal_window"] == 3 * pixels * (2 * 2 + 1)
    assert image_path_bound_bytes(PoseNodeConfig(), message_bytes_per_pixel=3)["pairing"] == 3 * pixels * 31
    annotated = image_path_bound_bytes(PoseNodeConfig(publish_annotated_image=True))
    assert annotated["total"] - defaults["total"] == 3 * pixels * (10 + 3)
    half = image_path_bound_bytes(PoseNodeConfig(max_image_pixels=pixels // 2))
    assert half["total"] * 2 == defaults["total"]


def test_large_blocks_go_back_to_the_os(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    from tdmi_ros.memory_bound import return_large_blocks_to_os

    assert return_large_blocks_to_os()  # glibc (Debian): mallopt accepted
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "4096")
    assert not return_large_blocks_to_os()  # the user's setting wins


def test_mmap_threshold_sits_above_the_runtimes_per_frame_pieces():
    """Blocks at or above the threshold are fresh zero pages each frame (page faults cost the 3-person
    pipeline 7-14 % of its frame rate at 1 MiB, 5 persons 12 %): on CPU the runtime makes its per-frame
    feature tensors in pieces of at most CPU_BLOCK_BYTES, which must stay below it for any number of
    persons, and images well above it must not (the flood above relies on freed images leaving RSS)."""
    from tdmi_core.models.configs import MODEL_CONFIGS
    from tdmi_core.runtime.estimator import CPU_BLOCK_BYTES
    from tdmi_ros.memory_bound import MMAP_THRESHOLD_BYTES

    cfg = MODEL_CONFIGS["tdmi_movenet"]
    stages, float_bytes = 4, 4
    one_person_frame = stages * cfg.width * cfg.heatmap_size_hw[0] * cfg.heatmap_size_hw[1] * float_bytes
    assert one_person_frame <= CPU_BLOCK_BYTES < MMAP_THRESHOLD_BYTES  # a piece holds at least one person-frame
    assert SIDE * SIDE * 8 > MMAP_THRESHOLD_BYTES  # the flood's messages still go back to the OS
