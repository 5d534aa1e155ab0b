"""tdmi_ros.pipeline.PosePipeline with the real streaming estimator (tiny random model), no ROS:
frame-t tokens after t+delta, tracker ids, skipping instead of queueing, survival of bad frames."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from tiny_model import build_tiny_estimator

from tdmi_core.tracking import IouTracker
from tdmi_ros.diagnostics import PipelineStats
from tdmi_ros.pipeline import SKIP_REASON, FrameJob, PosePipeline

DELTA = 2


class Collector:
    def __init__(self):
        self.results: list[tuple[object, list]] = []
        self.event = threading.Condition()

    def __call__(self, token, poses):
        with self.event:
            self.results.append((token, poses))
            self.event.notify_all()

    def wait_for(self, n, timeout_s=30.0):
        deadline = time.monotonic() + timeout_s
        with self.event:
            while len(self.results) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"only {len(self.results)} of {n} results"
                self.event.wait(left)


def job(i, boxes, ids=None, image=None):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    ids = np.full(len(boxes), -1) if ids is None else np.asarray(ids)
    img = np.full((48, 64, 3), i % 255, np.uint8) if image is None else image
    return FrameJob(token=(f"frame{i}", None), image_bgr=img, boxes_xyxy=boxes, scores=np.full(len(boxes), 0.9),
                    track_ids=ids.astype(np.int64), received_s=time.monotonic())


@pytest.fixture
def pipeline():
    out = Collector()
    stats = PipelineStats()
    p = PosePipeline(build_tiny_estimator(DELTA), IouTracker(0.3, 5), out, stats, queue_depth=100)
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
    assert [t for t, _ in out.results] == [(f"frame{i}", None) for i in range(n - DELTA)]  # nothing for the last delta
    for _, poses in out.results:
        assert sorted(pp.track_id for pp in poses) == [0, 1]
        for pp in poses:
            assert pp.keypoints.shape == (17, 3) and np.all(np.isfinite(pp.keypoints))
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
    assert [t[0] for t, _ in out.results] == ["frame0", "frame1", "frame2", "frame3"]
    for i in range(10, 10 + DELTA + 1):
        p.submit(job(i, [[5, 5, 20, 40]]))
    out.wait_for(5)
    assert out.results[4][0][0] == "frame10"


def test_bad_frame_counted_and_pipeline_keeps_going(pipeline):
    p, out, stats = pipeline
    bad = job(0, [[5, 5, 20, 40]], image=np.zeros((48, 64), np.uint8))  # 2-D image: the estimator refuses it
    p.submit(bad)
    for i in range(1, 1 + DELTA + 1):
        p.submit(job(i, [[5, 5, 20, 40]]))
    out.wait_for(1)
    assert stats.drops()["inference_error"] == 1
    assert out.results[0][0][0] == "frame1" and p.healthy


def test_full_queue_skips_oldest_instead_of_growing():
    out = Collector()
    stats = PipelineStats()
    p = PosePipeline(build_tiny_estimator(DELTA), IouTracker(), out, stats, queue_depth=2)
    p.start()
    try:
        n = 60
        for i in range(n):  # a burst far faster than inference
            p.submit(job(i, [[5, 5, 20, 40], [30, 5, 50, 40]]))
            assert p.depth <= 2
        deadline = time.monotonic() + 30
        while stats.counts().get("processed", 0) + stats.drops().get(SKIP_REASON, 0) < n:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        skipped = stats.drops()[SKIP_REASON]
        assert skipped > 0
        assert stats.counts()["processed"] + skipped == n
        time.sleep(0.2)
        # the frames that were processed come out in order, none twice
        idx = [int(t[0][5:]) for t, _ in out.results]
        assert idx == sorted(set(idx))
    finally:
        p.stop()


def test_stale_frames_skipped_by_age():
    out = Collector()
    stats = PipelineStats()
    p = PosePipeline(build_tiny_estimator(DELTA), IouTracker(), out, stats, queue_depth=10, max_frame_age_s=0.5)
    old = job(0, [[5, 5, 20, 40]])
    old = FrameJob(old.token, old.image_bgr, old.boxes_xyxy, old.scores, old.track_ids, time.monotonic() - 5.0)
    p.start()
    try:
        p.submit(old)
        deadline = time.monotonic() + 10
        while stats.drops().get(SKIP_REASON, 0) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert stats.counts().get("processed", 0) == 0
    finally:
        p.stop()


def test_idle_flush_publishes_the_last_delta_frames():
    out = Collector()
    p = PosePipeline(build_tiny_estimator(DELTA), IouTracker(), out, PipelineStats(), queue_depth=10,
                     flush_after_idle_s=0.3)
    p.start()
    try:
        for i in range(5):
            p.submit(job(i, [[5, 5, 20, 40]]))
        out.wait_for(5, timeout_s=20)
        assert [t[0] for t, _ in out.results] == [f"frame{i}" for i in range(5)]
    finally:
        p.stop()
