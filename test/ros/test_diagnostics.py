"""tdmi_ros.diagnostics: levels and the DiagnosticArray form of the pipeline statistics."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from tdmi_core.runtime.stats import PipelineStats
from tdmi_ros import conversions as conv
from tdmi_ros.diagnostics import OK, WARN, assess, diagnostics_to_dict, stats_to_diagnostics


def test_assess_levels():
    stats = PipelineStats()
    stats.tick("image", now_s=0.0)
    level, msg = assess(stats.snapshot(now_s=0.5), ("image", "detections"), silence_warn_s=2.0)
    assert level == WARN and "detections (never)" in msg
    stats.tick("detections", now_s=0.5)
    assert assess(stats.snapshot(now_s=1.0), ("image", "detections"), 2.0)[0] == OK
    stats.drop("compute_behind")
    level, msg = assess(stats.snapshot(now_s=1.0), ("image", "detections"), 2.0)
    assert level == WARN and "compute behind" in msg
    level, msg = assess(stats.snapshot(now_s=10.0), ("image", "detections"), 2.0)
    assert level == WARN and "image (" in msg


def test_diagnostic_array_round_trips_with_every_number():
    from builtin_interfaces.msg import Time

    stats = PipelineStats()
    stats.tick("image", now_s=0.0)
    stats.drop("box_bad_box", 5)
    stats.latency("inference", 0.02)
    msg = stats_to_diagnostics(stats.snapshot(now_s=0.1), "tdmi_pose: pipeline", "hw", WARN, "msg", Time(sec=3))
    msg = deserialize_message(serialize_message(msg), type(msg))
    d = diagnostics_to_dict(msg)
    assert d["level"] == "1" and d["message"] == "msg" and d["drop/box_bad_box"] == "5"
    assert d["count/image"] == "1" and float(d["latency_ms/inference/p50"]) == pytest.approx(20.0)
    assert msg.status[0].name == "tdmi_pose: pipeline" and msg.header.stamp.sec == 3


def _vision_det(cx, cy, w, h, cls, score, det_id=""):
    """A duck-typed vision_msgs/Detection2D (vision_msgs is not on pip)."""
    hyp = SimpleNamespace(hypothesis=SimpleNamespace(class_id=cls, score=score))
    bbox = SimpleNamespace(center=SimpleNamespace(position=SimpleNamespace(x=cx, y=cy)), size_x=w, size_y=h)
    return SimpleNamespace(results=[hyp], bbox=bbox, id=det_id)


def test_vision_msgs_detections_keep_people_and_parse_ids():
    msg = SimpleNamespace(detections=[
        _vision_det(50, 40, 20, 40, "person", 0.9, "12"),
        _vision_det(20, 20, 10, 10, "car", 0.99),
        _vision_det(80, 40, 10, 30, "0", 0.6, "abc"),
        _vision_det(80, 40, float("nan"), 30, "person", 0.6),
        SimpleNamespace(results=[], bbox=None, id=""),
    ])
    parsed = conv.vision_detections_to_boxes(msg, 100, 80)
    np.testing.assert_allclose(parsed.boxes_xyxy, [[40, 20, 60, 60], [75, 25, 85, 55]])
    np.testing.assert_array_equal(parsed.track_ids, [12, -1])
    assert parsed.drops == {"not_person": 2, "bad_box": 1}
