"""Property-based fuzzing of the real pose node process over loopback DDS (strategies in
fuzz_strategies.py).

Each hypothesis example is a burst of hostile messages sent to one long-running node. After each
burst, once the node has counted every message and its pairing waits have expired, the test checks:

- the node is alive, with no unexpected exception in a callback and no inference error;
- every image is accounted for: decoded and paired (then inferred or skipped as compute_behind),
  or dropped under a named reason; so is every detection array; decode drops fall within what the
  oracle allows for each message (exactly, where it allows one outcome that the callback decides);
- every processed frame yields its /poses message (all but the last ``delta`` of a sequence), each
  stamped with the stamp and frame_id of an image that was sent, its 17 keypoints inside that image;
- valid frames sent afterwards come out with their own stamps.

The default run sends a few hundred messages per transport; ``pytest -m fuzz_long`` sends
thousands (TDMI_FUZZ_BATCHES batches per transport, default 120) and prints the figures kept in
docs/ros.md (messages by kind, drops by reason, peak RSS).
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from fuzz_strategies import BAD_ENCODING, BAD_SIZE, DECODE_FAILED, SECOND_NS, VALID, Batch, Sent, batches, \
    make_stamp, person_detections, vision_detections
from hypothesis import HealthCheck, Phase, given, settings
from ros_harness import StreamProbe, header_for, start_pose_node, synthetic_frame, write_pose_params

from tdmi_ros.conversions import bgr_to_image_msg, skeleton_array_to_numpy, stamp_to_ns

pytestmark = pytest.mark.ros

DELTA = 2
MAX_PIXELS = 512 * 512
BASE_NS = 1_700_000_000 * SECOND_NS
EPOCH_NS = 20_000 * SECOND_NS  # each burst gets its own stretch of time ...
CHECK_AFTER_NS = 10_000 * SECOND_NS  # ... and the valid frames after it come this much later
# queue_depth: bursts overflow it (compute_behind), the valid frames after a settled burst never do
FUZZ_PARAMS = dict(image_qos="reliable", image_qos_depth=1000, detections_qos_depth=1000, pairing_max_wait_s=0.3,
                   max_image_pixels=MAX_PIXELS, stamp_reset_s=10.0, queue_depth=DELTA + 6, max_frame_age_s=0.0,
                   publish_annotated_image=True)
DECODE_REASONS = (BAD_ENCODING, BAD_SIZE, DECODE_FAILED)


def _settings(examples: int) -> settings:
    # no shrinking: the node keeps its state between examples, so a smaller replay is not the same test
    return settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                    phases=[Phase.explicit, Phase.generate], print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])


@dataclass
class FuzzRun:
    """One pose node under fuzz, and everything sent to it so far."""

    ros: Any
    procs: Any
    node: Any
    probe: StreamProbe
    image_pub: Any
    det_pub: Any
    transport: str
    detections: Callable[[Any, list[tuple]], Sent]  # header, rows -> detection message
    batches_sent: int = 0
    kinds: Counter = field(default_factory=Counter)
    decode_bounds: dict[str, list[int]] = field(default_factory=lambda: {r: [0, 0] for r in DECODE_REASONS})
    sent_images: dict[int, list[tuple[str, tuple[int, int]]]] = field(default_factory=dict)  # stamp -> (frame_id, wh)
    totals: Counter = field(default_factory=Counter)
    poses_checked: int = 0
    peak_rss_mb: float = 0.0

    def publish(self, batch: Batch) -> None:
        for sent in batch.messages:
            self.kinds[sent.kind] += 1
            if sent.topic == "detections":
                self.det_pub.publish(sent.msg)
                self.totals["detections"] += 1
                continue
            self.image_pub.publish(sent.msg)
            self.totals["images"] += 1
            for reason in DECODE_REASONS:
                self.decode_bounds[reason][0] += sent.outcomes == {reason}
                self.decode_bounds[reason][1] += reason in sent.outcomes
            if VALID in sent.outcomes:
                self.sent_images.setdefault(sent.stamp_ns, []).append((sent.msg.header.frame_id, sent.size_wh))

    def settled(self) -> dict[str, int]:
        """Fresh diagnostics once every message is counted and nothing is waiting any more."""
        def numbers(diag: dict[str, str]) -> Counter:
            return Counter({k: int(v) for k, v in diag.items() if k.startswith(("count/", "drop/"))})

        last: Counter = Counter()

        def done() -> bool:
            nonlocal last
            if self.node.poll() is not None or not self.probe.diagnostics:
                return self.node.poll() is not None
            last = numbers(self.probe.last_diagnostics())
            return (last["count/image"] == self.totals["images"] and last["count/detections"] == self.totals["detections"]
                    and not accounting_gaps(last))

        try:
            self.ros.spin_until(done, 120.0, "the node to count and settle every message")
        except BaseException:
            print(f"sent {dict(self.totals)}; node counted {dict(last)}; unaccounted {accounting_gaps(last)}")
            raise
        assert self.node.poll() is None, f"pose node died:\n{self.procs.log_text(self.node)}"
        self.peak_rss_mb = max(self.peak_rss_mb, peak_rss_mb(self.node.pid))
        return last

    def check_valid_frames_after(self, start_ns: int) -> None:
        """Valid frames after the burst come out with their own stamps."""
        stamps = []
        for i in range(DELTA + 3):
            img, box = synthetic_frame(i)
            header = header_for(i, base_ns=start_ns, frame_id="cam")
            self.image_pub.publish(to_transport(img, header, self.transport))
            cx, cy, w, h = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]
            self.det_pub.publish(self.detections(header, [(cx, cy, w, h, 0.9, -1)]).msg)
            stamps.append(stamp_to_ns(header.stamp))
            self.sent_images.setdefault(stamps[-1], []).append(("cam", (img.shape[1], img.shape[0])))
        self.totals["images"] += len(stamps)
        self.totals["detections"] += len(stamps)
        wanted = set(stamps[:3])
        try:
            self.ros.spin_until(lambda: wanted <= {stamp_to_ns(m.header.stamp) for m in self.probe.poses}
                                or self.node.poll() is not None, 60.0, "poses of the valid frames after the burst")
        except BaseException:
            print(f"valid frames {stamps}; last poses {[stamp_to_ns(m.header.stamp) for m in self.probe.poses[-8:]]}; "
                  f"diagnostics {self.probe.last_diagnostics()}\n{self.procs.log_text(self.node)[-3000:]}")
            raise
        assert self.node.poll() is None, f"pose node died:\n{self.procs.log_text(self.node)}"
        for m in self.probe.poses:
            if stamp_to_ns(m.header.stamp) in wanted:
                assert len(m.skeletons) == 1 and m.header.frame_id == "cam"

    def check_poses(self) -> None:
        """Every /poses message describes an image that was sent: its stamp, frame_id and size."""
        for msg in self.probe.poses[self.poses_checked:]:
            stamp = stamp_to_ns(msg.header.stamp)
            candidates = [wh for frame_id, wh in self.sent_images.get(stamp, []) if frame_id == msg.header.frame_id]
            assert candidates, f"/poses for stamp {stamp} frame_id {msg.header.frame_id!r}: no such image was sent"
            _, kps = skeleton_array_to_numpy(msg)
            inside = [bool(np.all((kps[..., 0] >= 0) & (kps[..., 0] <= w - 1) & (kps[..., 1] >= 0)
                                  & (kps[..., 1] <= h - 1))) for w, h in candidates]
            assert any(inside), (stamp, candidates)
            assert np.all((kps[..., 2] >= 0) & (kps[..., 2] <= 1))
        self.poses_checked = len(self.probe.poses)

    def run_batch(self, batch: Batch) -> None:
        epoch = BASE_NS + self.batches_sent * EPOCH_NS
        self.batches_sent += 1
        self.publish(batch)
        numbers = self.settled()
        self.check_counts(numbers)
        self.check_valid_frames_after(epoch + CHECK_AFTER_NS)
        self.check_counts(self.settled())
        self.check_poses()

    def check_counts(self, n: dict[str, int]) -> None:
        for reason, (low, high) in self.decode_bounds.items():
            # (a compressed stream that fails only in the decoder is counted when the worker reaches
            # it: unpaired or skipped, it is never decoded, so only the upper bound holds there)
            low = 0 if reason == DECODE_FAILED and self.transport == "compressed" else low
            assert low <= n[f"drop/{reason}"] <= high, (reason, low, n[f"drop/{reason}"], high)
        assert n["drop/inference_error"] == 0 and not any(
            v for k, v in n.items() if k.startswith("drop/callback_error")), n
        assert 0 <= n["count/processed"] - n["count/poses"] <= DELTA, n


def accounting_gaps(n: Counter) -> dict[str, int]:
    """Messages the counters do not account for yet (all zero once the node has settled).

    An image ends as a drop in the callback (header checks) or the pairer (``image_*``), a pair
    with another camera's detections (``frame_id_mismatch``), or a frame handed to the worker, which
    decodes it and then drops it (``image_*``, ``detections_malformed``), skips it
    (``compute_behind``), fails on it (``inference_error``) or processes it. A detection array ends
    as a drop (``detections_*``) or in a pair (``paired``, ``frame_id_mismatch``).
    """
    image_drops = sum(v for k, v in n.items() if k.startswith("drop/image_"))
    det_drops = sum(v for k, v in n.items() if k.startswith("drop/detections_") and k != "drop/detections_malformed")
    frames_done = (n["count/processed"] + n["drop/compute_behind"] + n["drop/inference_error"]
                   + n["drop/detections_malformed"])
    gaps = {
        "images": n["count/image"] - image_drops - n["drop/frame_id_mismatch"] - frames_done
        - n["drop/callback_error_image"],
        "detections": n["count/detections"] - det_drops - n["count/paired"] - n["drop/frame_id_mismatch"]
        - n["drop/callback_error_detections"],
    }
    return {k: v for k, v in gaps.items() if v}


def peak_rss_mb(pid: int) -> float:
    """The highest resident set size of ``pid`` so far (VmHWM), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")) / 1024


def to_transport(image: np.ndarray, header: Any, transport: str) -> Any:
    from tdmi_ros.conversions import bgr_to_compressed_msg

    return bgr_to_compressed_msg(image, header) if transport == "compressed" else bgr_to_image_msg(image, header)


def start_fuzz_run(ros, procs, tmp_path: Path, repo_root: Path, transport: str,
                   detections: Callable[[Any, list[tuple]], Sent] = person_detections, **params: Any) -> FuzzRun:
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage

    node = start_pose_node(procs, write_pose_params(tmp_path, repo_root, image_transport=transport,
                                                    **FUZZ_PARAMS, **params))
    probe = StreamProbe(ros, image_qos_depth=1000)
    reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = probe.image_pub
    if transport == "compressed":
        image_pub = ros.node.create_publisher(CompressedImage, "image/compressed", reliable)
    det_pub = probe.det_pub
    if detections is not person_detections:
        det_pub = ros.node.create_publisher(type(detections(header_for(0), []).msg), "detections", reliable)
    ros.spin_until(lambda: (bool(probe.diagnostics) and image_pub.get_subscription_count() > 0
                            and det_pub.get_subscription_count() > 0) or node.poll() is not None,
                   60.0, "the pose node to become active")
    assert node.poll() is None, procs.log_text(node)
    return FuzzRun(ros, procs, node, probe, image_pub, det_pub, transport, detections)


def fuzz(run: FuzzRun, examples: int, max_size: int) -> None:
    @_settings(examples)
    @given(batch=batches(BASE_NS, run.transport, MAX_PIXELS, max_size, run.detections))
    def one_burst(batch: Batch) -> None:
        run.run_batch(_shifted(batch, BASE_NS + run.batches_sent * EPOCH_NS))

    one_burst()


def _shifted(batch: Batch, epoch_ns: int) -> Batch:
    """The burst moved into its own stretch of time (strategies draw stamps from BASE_NS); the far
    past and stamps clamped to the int32 ends stay where they are."""
    for sent in batch.messages:
        if sent.stamp_ns > 0 and sent.msg.header.stamp.sec < 2**31 - 1:
            overflow = sent.msg.header.stamp.nanosec >= SECOND_NS
            sent.msg.header.stamp = make_stamp(sent.stamp_ns + epoch_ns - BASE_NS, overflow)
    return batch


def summary(run: FuzzRun) -> str:
    n = run.settled()
    drops = {k.removeprefix("drop/"): v for k, v in sorted(n.items()) if k.startswith("drop/") and v}
    return (f"{run.transport}: {run.batches_sent} bursts, {sum(run.kinds.values())} fuzz messages + "
            f"{(DELTA + 3) * run.batches_sent} valid frames; by kind {dict(sorted(run.kinds.items()))}; "
            f"node counted images {n['count/image']}, detections {n['count/detections']}, paired {n['count/paired']}, "
            f"processed {n['count/processed']}, poses {n['count/poses']}, resets {n['count/stream_reset']}; "
            f"drops {drops}; crashes 0; peak RSS {run.peak_rss_mb:.0f} MiB")


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_fuzz_node_every_message_yields_poses_or_a_counted_drop(ros, procs, tmp_path, repo_root, transport):
    run = start_fuzz_run(ros, procs, tmp_path, repo_root, transport)
    fuzz(run, examples=8, max_size=30)
    print("\n" + summary(run))
    assert procs.stop(run.node) == 0, procs.log_text(run.node)


@pytest.mark.fuzz_long
@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_fuzz_node_long_run(ros, procs, tmp_path, repo_root, transport):
    run = start_fuzz_run(ros, procs, tmp_path, repo_root, transport)
    fuzz(run, examples=int(os.environ.get("TDMI_FUZZ_BATCHES", "120")), max_size=40)
    text = summary(run)
    print("\n" + text)
    out = os.environ.get("TDMI_FUZZ_SUMMARY")
    if out:
        with open(out, "a") as f:
            f.write(text + "\n")
    assert procs.stop(run.node) == 0, procs.log_text(run.node)


def test_fuzz_node_vision_msgs(ros, procs, tmp_path, repo_root):
    pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not installed (not on PyPI)")
    run = start_fuzz_run(ros, procs, tmp_path, repo_root, "raw", vision_detections, detections_type="vision_msgs")
    fuzz(run, examples=3, max_size=20)
    assert procs.stop(run.node) == 0, procs.log_text(run.node)
