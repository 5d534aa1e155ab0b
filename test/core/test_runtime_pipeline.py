"""The frame pipeline of tdmi_core.runtime with the real streaming estimator (tiny untrained model):
frame-t tokens after t+delta, tracker ids, skipping instead of queueing, survival of bad frames,
decoding only frames the worker reaches; the generic worker and the statistics behind /diagnostics."""
from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
import torch

from tdmi_core.models import build_model, load_model_config
from tdmi_core.runtime.backends.torch_backend import TorchBackend
from tdmi_core.runtime.estimator import StreamingPoseEstimator
from tdmi_core.runtime.pipeline import SKIP_REASON, DroppedFrame, FrameInput, FrameJob, PosePipeline
from tdmi_core.runtime.stats import PipelineStats, RateMeter
from tdmi_core.runtime.types import FramePoses, TrackedBox
from tdmi_core.runtime.worker import FrameWorker
from tdmi_core.tracking import IouTracker

DELTA = 2


def tiny_estimator() -> StreamingPoseEstimator:
    torch.manual_seed(0)
    cfg = load_model_config("tdmi_lite", input_size_hw=(64, 32), heatmap_size_hw=(16, 8), delta=DELTA)
    return StreamingPoseEstimator(TorchBackend(build_model(cfg).eval()), cfg)


class Collector:
    def __init__(self):
        self.results: list[tuple[object, list]] = []
        self.event = threading.Condition()

    def __call__(self, frame: FramePoses) -> None:
        with self.event:
            self.results.append((frame.token, frame.poses))
            self.event.notify_all()

    def wait_for(self, n, timeout_s=30.0):
        deadline = time.monotonic() + timeout_s
        with self.event:
            while len(self.results) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"only {len(self.results)} of {n} results"
                self.event.wait(left)


def job(i, boxes, ids=None, image=None, received_s=None, loads=None):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    ids = np.full(len(boxes), -1) if ids is None else np.asarray(ids)
    img = np.full((48, 64, 3), i % 255, np.uint8) if image is None else image

    def load():
        if loads is not None:
            loads.append(i)
        return FrameInput(img, boxes, np.full(len(boxes), 0.9), ids.astype(np.int64))

    return FrameJob(token=f"frame{i}", load=load, received_s=time.monotonic() if received_s is None else received_s)


def wait_until(predicate, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def pipeline():
    out = Collector()
    stats = PipelineStats()
    p = PosePipeline(tiny_estimator(), lambda: IouTracker(0.3, 5), out, stats, queue_depth=100)
    p.start()
    yield p, out, stats
    p.stop()


def test_outputs_carry_frame_t_token_after_t_plus_delta_and_tracker_ids(pipeline):
    p, out, stats = pipeline
    n = 8
    for i in range(n):  # two people walking right; detector gives no ids
        p.submit(job(i, [[5 + i, 5, 20 + i, 40], [35 + i, 5, 50 + i, 40]]))
    out.wait_for(n - DELTA)
    time.sleep(0.2)
    assert [t for t, _ in out.results] == [f"frame{i}" for i in range(n - DELTA)]  # nothing for the last delta
    for _, poses in out.results:
        assert sorted(pp.track_id for pp in poses) == [0, 1]
        for pp in poses:
            assert pp.keypoints.shape == (17, 3) and pp.keypoints.dtype == np.float32
            assert np.all(np.isfinite(pp.keypoints))
    assert stats.counts()["processed"] == n


def test_detector_ids_are_used_as_given(pipeline):
    p, out, _ = pipeline
    for i in range(DELTA + 1):
        p.submit(job(i, [[5, 5, 20, 40]], ids=[42]))
    out.wait_for(1)
    assert [pp.track_id for pp in out.results[0][1]] == [42]


def test_reset_flushes_the_tail_and_restarts(pipeline):
    p, out, _ = pipeline
    for i in range(4):
        p.submit(job(i, [[5, 5, 20, 40]]))
    p.request_reset()
    out.wait_for(4)  # 2 on schedule + 2 flushed (edge padded)
    assert [t for t, _ in out.results] == ["frame0", "frame1", "frame2", "frame3"]
    for i in range(10, 10 + DELTA + 1):
        p.submit(job(i, [[5, 5, 20, 40]]))
    out.wait_for(5)
    assert out.results[4][0] == "frame10"


def test_bad_frame_counted_and_pipeline_keeps_going(pipeline):
    p, out, stats = pipeline
    bad = job(0, [[5, 5, 20, 40]], image=np.zeros((48, 64), np.uint8))  # 2-D image: the estimator refuses it
    p.submit(bad)
    for i in range(1, 1 + DELTA + 1):
        p.submit(job(i, [[5, 5, 20, 40]]))
    out.wait_for(1)
    assert stats.drops()["inference_error"] == 1
    assert out.results[0][0] == "frame1" and p.healthy


def test_unusable_input_is_a_counted_drop_not_a_failure(pipeline):
    p, out, stats = pipeline

    def undecodable():
        raise DroppedFrame("image_decode_failed", "not a JPEG")

    p.submit(FrameJob("garbage", undecodable, time.monotonic()))
    for i in range(DELTA + 1):
        p.submit(job(i, [[5, 5, 20, 40]]))
    out.wait_for(1)
    assert stats.drops() == {"image_decode_failed": 1}  # no inference_error, no restart
    assert out.results[0][0] == "frame0" and p.healthy


class ProbeBackend:
    """A real backend whose temporal head can be made to fail or to wait for the next backbone call."""

    def __init__(self, inner: TorchBackend) -> None:
        self.inner = inner
        self.name, self.device, self.input_dtype, self.max_batch = inner.name, inner.device, inner.input_dtype, None
        self.backbone_calls = 0
        self.head_calls = 0
        self.called = threading.Condition()
        self.wait_in_head = 0  # the first head calls wait (up to 10 s) for the next frame's backbone
        self.overlapped: list[bool] = []
        self.fail_head = False

    def backbone(self, crops: torch.Tensor) -> torch.Tensor:
        with self.called:
            self.backbone_calls += 1
            self.called.notify_all()
        return self.inner.backbone(crops)

    def temporal_head(self, motion: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        if self.fail_head:
            raise RuntimeError("head exploded")
        n, self.head_calls = self.head_calls, self.head_calls + 1
        if n < self.wait_in_head:
            # head n is frame DELTA + n's step (one backbone call per frame): the next frame's backbone is
            # call DELTA + n + 2, which a pipeline that finishes each head before the next backbone never makes
            with self.called:
                self.overlapped.append(self.called.wait_for(lambda: self.backbone_calls >= DELTA + n + 2, timeout=10.0))
        return self.inner.temporal_head(motion, visual)


def probe_pipeline(**kwargs) -> tuple[PosePipeline, Collector, PipelineStats, ProbeBackend, StreamingPoseEstimator]:
    est = tiny_estimator()
    backend = est.backend = ProbeBackend(est.backend)
    out, stats = Collector(), PipelineStats()
    return PosePipeline(est, IouTracker, out, stats, **kwargs), out, stats, backend, est


def test_next_frames_backbone_runs_while_the_head_runs_and_poses_equal_sequential_push():
    p, out, stats, backend, _ = probe_pipeline(queue_depth=100)
    backend.wait_in_head = 2  # the first two heads wait for the next frame's backbone: only an overlap gives it
    n = 8
    jobs = [job(i, [[5 + i, 5, 20 + i, 40], [35 - i, 8, 55 - i, 44]], ids=[0, 1]) for i in range(n)]
    gate = threading.Event()
    p.worker.call_soon(gate.wait)  # every frame is queued before the first step
    p.start()
    try:
        for j in jobs:
            p.submit(j)
        gate.set()
        p.finish()
        assert backend.overlapped == [True, True]
        assert stats.drops() == {} and p.healthy
    finally:
        p.stop()
    sequential = tiny_estimator()  # same seed: the same weights
    expected = []
    for j in jobs:
        frame = j.load()
        tracks = [TrackedBox(int(t), b, float(s)) for t, b, s in zip(frame.track_ids, frame.boxes_xyxy, frame.scores)]
        expected += sequential.push(frame.image_bgr, tracks, token=j.token)
    expected += sequential.flush()
    assert [t for t, _ in out.results] == [r.token for r in expected] == [f"frame{i}" for i in range(n)]
    for (_, poses), want in zip(out.results, expected):
        for got, ref in zip(poses, want.poses, strict=True):
            np.testing.assert_allclose(got.keypoints, ref.keypoints, rtol=1e-5, atol=1e-5)


def test_failed_head_is_counted_restarts_the_sequences_and_a_streak_turns_unhealthy():
    p, out, stats, backend, est = probe_pipeline(queue_depth=100, max_consecutive_errors=2)
    backend.fail_head = True
    p.start()
    try:
        for i in range(DELTA + 1):  # frame 0's window fails
            p.submit(job(i, [[5, 5, 20, 40]]))
        wait_until(lambda: stats.drops().get("inference_error", 0) == 1)
        backend.fail_head = False
        for i in range(DELTA + 1, 2 * DELTA + 3):
            p.submit(job(i, [[5, 5, 20, 40]]))
        out.wait_for(2)
        # the failed sequence (frames 0..delta) was dropped: the next starts at frame delta + 1
        assert [t for t, _ in out.results] == [f"frame{DELTA + 1}", f"frame{DELTA + 2}"]
        assert p.healthy and stats.drops() == {"inference_error": 1}
        backend.fail_head = True
        for i in range(100, 100 + 2 * (DELTA + 1)):  # two more failures, each after a restart
            p.submit(job(i, [[5, 5, 20, 40]]))
        wait_until(lambda: stats.drops().get("inference_error", 0) == 3)
        assert not p.healthy and "head exploded" in p.last_error
        assert est.num_buffered_frames <= 2 * DELTA + 1
    finally:
        p.stop()


def test_full_queue_skips_oldest_without_decoding_it():
    out = Collector()
    stats = PipelineStats()
    loads: list[int] = []
    p = PosePipeline(tiny_estimator(), IouTracker, out, stats, queue_depth=2)
    p.start()
    try:
        n = 60
        for i in range(n):  # a burst far faster than inference
            p.submit(job(i, [[5, 5, 20, 40], [30, 5, 50, 40]], loads=loads))
            assert p.depth <= 2
        wait_until(lambda: stats.counts().get("processed", 0) + stats.drops().get(SKIP_REASON, 0) == n)
        skipped = stats.drops()[SKIP_REASON]
        assert skipped > 0
        assert stats.counts()["processed"] + skipped == n
        assert len(loads) == n - skipped  # skipped frames were never decoded
        time.sleep(0.2)
        # the frames that were processed come out in order, none twice
        idx = [int(t[5:]) for t, _ in out.results]
        assert idx == sorted(set(idx))
    finally:
        p.stop()


def test_stale_frames_skipped_by_age():
    out = Collector()
    stats = PipelineStats()
    loads: list[int] = []
    p = PosePipeline(tiny_estimator(), IouTracker, out, stats, queue_depth=10, max_frame_age_s=0.5)
    p.start()
    try:
        p.submit(job(0, [[5, 5, 20, 40]], received_s=time.monotonic() - 5.0, loads=loads))
        wait_until(lambda: stats.drops().get(SKIP_REASON, 0) >= 1, 10.0)
        assert stats.counts().get("processed", 0) == 0 and loads == []
    finally:
        p.stop()


def test_idle_flush_publishes_the_last_delta_frames():
    out = Collector()
    p = PosePipeline(tiny_estimator(), IouTracker, out, PipelineStats(), queue_depth=10, flush_after_idle_s=0.3)
    p.start()
    try:
        for i in range(5):
            p.submit(job(i, [[5, 5, 20, 40]]))
        out.wait_for(5, timeout_s=20)
        assert [t for t, _ in out.results] == [f"frame{i}" for i in range(5)]
    finally:
        p.stop()


def test_offline_submit_waits_instead_of_skipping_and_finish_flushes():
    out = Collector()
    stats = PipelineStats()
    p = PosePipeline(tiny_estimator(), IouTracker, out, stats, queue_depth=1, drop_when_full=False)
    p.start()
    try:
        n = 12
        for i in range(n):
            p.submit(job(i, [[5, 5, 20, 40]]))
            assert p.depth <= 1
        p.finish()
        assert [t for t, _ in out.results] == [f"frame{i}" for i in range(n)]
        assert SKIP_REASON not in stats.drops()
    finally:
        p.stop()


def test_worker_runs_calls_in_order_and_reports_failures():
    done: list[str] = []
    stats = PipelineStats()
    errors: list[int] = []

    def handle(item: str) -> None:
        if item == "boom":
            raise RuntimeError("broken frame")
        done.append(item)

    worker = FrameWorker(handle, stats, queue_depth=10, on_error=lambda: errors.append(1), max_consecutive_errors=2)
    worker.start()
    try:
        worker.submit("a")
        worker.call_soon(lambda: done.append("call"))
        worker.submit("boom")
        worker.submit("b")
        worker.join()
        assert done == ["a", "call", "b"] and errors == [1] and worker.healthy
        assert stats.drops() == {"inference_error": 1} and "broken frame" in worker.last_error
        worker.submit("boom")
        worker.submit("boom")
        worker.join()
        assert not worker.healthy  # two failures in a row
    finally:
        worker.stop()
    with pytest.raises(ValueError, match="queue_depth"):
        FrameWorker(handle, stats, queue_depth=0)


def test_worker_batches_one_job_per_key_with_a_limit_per_key():
    stats = PipelineStats()
    batches: list[list[str]] = []
    gate = threading.Event()
    worker = FrameWorker(None, stats, queue_depth=1, handle_batch=batches.append)
    worker.start()
    try:
        worker.call_soon(gate.wait)  # hold the worker until everything is queued
        worker.submit("a0", key="a")
        worker.submit("b0", key="b")
        worker.submit("a1", key="a")  # camera a's queue is full: its oldest frame goes, b's stays
        worker.call_soon(lambda: batches.append(["call"]))
        worker.submit("c0", key="c")
        gate.set()
        worker.join()
        assert batches == [["b0", "a1"], ["call"], ["c0"]]  # a step never takes a job from behind a call
        assert stats.drops() == {SKIP_REASON: 1}
    finally:
        worker.stop()
    with pytest.raises(ValueError, match="exactly one"):
        FrameWorker(print, stats, handle_batch=print)


def test_two_streams_step_together_with_their_own_trackers():
    out = Collector()
    estimator = tiny_estimator()
    steps: list[int] = []
    begin_step = estimator.begin_step
    estimator.begin_step = lambda frames, own: steps.append(len(frames)) or begin_step(frames, own)
    p = PosePipeline(estimator, IouTracker, out, PipelineStats(), queue_depth=100)
    gate = threading.Event()
    p.worker.call_soon(gate.wait)
    p.start()
    try:
        n = 5
        for i in range(n):
            p.submit(dataclasses.replace(job(i, [[5 + i, 5, 20 + i, 40]]), token=f"a{i}", stream="a"))
            p.submit(dataclasses.replace(job(i, [[30 - i, 5, 50 - i, 40]]), token=f"b{i}", stream="b"))
        gate.set()
        out.wait_for(2 * (n - DELTA))
        p.finish()
        assert steps == [2] * n  # one estimator call per step for both cameras
        for cam in "ab":
            mine = [(t, poses) for t, poses in out.results if t.startswith(cam)]
            assert [t for t, _ in mine] == [f"{cam}{i}" for i in range(n)]
            assert all([pp.track_id for pp in poses] == [0] for _, poses in mine)  # each camera's own tracker
        assert set(p.trackers) == {"a", "b"}
    finally:
        p.stop()


def test_rate_meter_measures_steady_rate_and_forgets_old_events():
    meter = RateMeter(window_s=2.0)
    for i in range(100):
        meter.tick(i * 0.05)  # 20 Hz
    assert meter.rate_hz(99 * 0.05) == pytest.approx(20.0, rel=0.05)
    assert meter.rate_hz(100.0) == 0.0


def test_snapshot_counts_drops_latency_and_recent_skips():
    stats = PipelineStats()
    for i in range(10):
        stats.tick("image", now_s=i * 0.1)
    stats.drop("image_bad_size", 3)
    stats.drop("compute_behind", 2)
    stats.set_drops("", {"image_unpaired": 4})
    for ms in range(1, 101):
        stats.latency("inference", ms / 1000)
    stats.queue(1, 2)
    snap = stats.snapshot(now_s=1.0)
    assert snap.counts == {"image": 10}
    assert snap.drops == {"image_bad_size": 3, "compute_behind": 2, "image_unpaired": 4}
    assert snap.latency_ms["inference"]["p50"] == pytest.approx(50.5)
    assert snap.latency_ms["inference"]["p99"] == pytest.approx(99.01)
    assert snap.recent_skips == 2 and stats.snapshot(now_s=1.0).recent_skips == 0
    assert (snap.queue_depth, snap.queue_capacity) == (1, 2)
