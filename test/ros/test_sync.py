"""tdmi_ros.sync.StampPairer: exact/slop pairing, bounded waits, order, drops by reason, resets."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tdmi_ros.sync import StampPairer

MS = 1_000_000


def stamps(pairs):
    return [p.stamp_ns for p in pairs]


def test_pairs_either_arrival_order():
    s = StampPairer(max_wait_s=1.0)
    assert s.add_image(10 * MS, "i10", 0.0).pairs == []
    out = s.add_detections(10 * MS, "d10", 0.01).pairs
    assert [(p.stamp_ns, p.image, p.detections) for p in out] == [(10 * MS, "i10", "d10")]
    assert s.add_detections(20 * MS, "d20", 0.02).pairs == []
    assert stamps(s.add_image(20 * MS, "i20", 0.03).pairs) == [20 * MS]
    assert s.pending == (0, 0) and not s.drops and s.pairs_emitted == 2


def test_unpaired_items_expire_after_max_wait():
    s = StampPairer(max_wait_s=0.5)
    s.add_image(1 * MS, "a", 0.0)
    s.add_detections(2 * MS, "x", 0.0)  # no image with this stamp
    s.expire(0.4)
    assert s.pending == (1, 1)
    s.expire(0.6)
    assert s.pending == (0, 0)
    assert s.drops == {"image_unpaired": 1, "detections_unpaired": 1}


def test_detector_silence_drops_every_image_but_keeps_bounded():
    s = StampPairer(max_wait_s=0.2, max_pending=5)
    for i in range(100):
        assert s.add_image(i * 33 * MS, i, now_s=i * 0.033).pairs == []
        assert s.pending[0] <= 5
    s.expire(100.0)
    assert s.pending == (0, 0)
    assert s.drops["image_unpaired"] + s.drops["image_overflow"] == 100


def test_pending_is_bounded_per_side():
    s = StampPairer(max_wait_s=100.0, max_pending=3)
    for i in range(10):
        s.add_image(i * MS, i, 0.0)
        s.add_detections((100 + i) * MS, i, 0.0)
    assert s.pending == (3, 3)
    assert s.drops == {"image_overflow": 7, "detections_overflow": 7}


def test_backwards_and_duplicate_image_stamps_are_dropped():
    s = StampPairer(max_wait_s=1.0, reset_backwards_s=1.0)
    s.add_image(100 * MS, "a", 0.0)
    assert s.add_image(100 * MS, "dup", 0.0).pairs == []
    r = s.add_image(90 * MS, "back", 0.0)
    assert r.pairs == [] and not r.reset
    assert s.drops == {"image_duplicate_stamp": 1, "image_stamp_backwards": 1}
    assert stamps(s.add_detections(100 * MS, "d", 0.0).pairs) == [100 * MS]


def test_large_backward_jump_resets_and_restarts():
    s = StampPairer(max_wait_s=1.0, reset_backwards_s=1.0)
    s.add_image(5_000 * MS, "late", 0.0)
    s.add_detections(5_000 * MS, "d", 0.0)
    s.add_image(5_033 * MS, "pending", 0.0)
    r = s.add_image(10 * MS, "restart", 0.1)
    assert r.reset and s.resets == 1
    assert s.pending == (1, 0)  # only the new image waits; old state is gone
    assert stamps(s.add_detections(10 * MS, "d0", 0.1).pairs) == [10 * MS]


def test_pairs_come_out_in_stamp_order_and_skipped_older_images_count():
    s = StampPairer(max_wait_s=1.0)
    for t in (1, 2, 3):
        s.add_image(t * MS, t, 0.0)
    # the detector skipped frame 1 and 2's detections arrive after 3's
    assert stamps(s.add_detections(3 * MS, "d3", 0.0).pairs) == [3 * MS]
    assert s.drops["image_unpaired"] == 2
    assert s.add_detections(2 * MS, "d2", 0.0).pairs == []
    assert s.drops["detections_late"] == 1


def test_slop_pairs_nearest_within_tolerance():
    s = StampPairer(max_wait_s=1.0, slop_ns=2 * MS)
    s.add_detections(101 * MS, "d", 0.0)
    assert stamps(s.add_image(100 * MS, "i", 0.0).pairs) == [100 * MS]
    s.add_detections(210 * MS, "far", 0.0)
    assert s.add_image(200 * MS, "i2", 0.0).pairs == []


def test_duplicate_detection_stamp_dropped():
    s = StampPairer()
    s.add_detections(5 * MS, "a", 0.0)
    s.add_detections(5 * MS, "b", 0.0)
    assert s.drops == {"detections_duplicate_stamp": 1}


def test_second_array_for_a_paired_stamp_is_a_duplicate_and_the_first_wins():
    s = StampPairer(max_wait_s=1.0)
    s.add_image(5 * MS, "i", 0.0)
    assert [p.detections for p in s.add_detections(5 * MS, "first", 0.0).pairs] == ["first"]
    r = s.add_detections(5 * MS, "decoy", 0.0)
    assert r.pairs == [] and r.dropped == "detections_duplicate_stamp"
    assert s.add_detections(4 * MS, "old", 0.0).dropped == "detections_late"
    assert s.drops == {"detections_duplicate_stamp": 1, "detections_late": 1}


def test_detections_before_their_image_after_a_restart_still_pair():
    """A restarted source whose detections overtake its first image loses no frame."""
    s = StampPairer(max_wait_s=1.0, reset_backwards_s=1.0)
    for t in (60_000, 60_033):
        s.add_image(t * MS, t, 0.0)
        s.add_detections(t * MS, t, 0.0)
    s.add_image(60_066 * MS, "old sequence, waiting", 0.0)
    s.add_detections(60_099 * MS, "old sequence, waiting", 0.0)
    r = s.add_detections(0, "new d0", 0.1)  # 60 s back: the new sequence, its image not here yet
    assert r.dropped is None and r.pairs == []
    s.add_detections(33 * MS, "new d1", 0.1)
    r = s.add_image(0, "new i0", 0.1)
    assert r.reset and [(p.image, p.detections) for p in r.pairs] == [("new i0", "new d0")]
    assert stamps(s.add_image(33 * MS, "new i1", 0.2).pairs) == [33 * MS]
    assert s.drops == {"image_stream_reset": 1, "detections_stream_reset": 1}


def test_invalid_arguments_raise():
    with pytest.raises(ValueError):
        StampPairer(max_wait_s=0)
    with pytest.raises(ValueError):
        StampPairer(max_pending=0)


@pytest.mark.parametrize("reset_backwards_ms", [1_000_000, 15])
@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.tuples(st.booleans(), st.integers(0, 40), st.floats(0, 0.3)), max_size=80))
def test_property_order_bounds_and_accounting(events, reset_backwards_ms):
    """Random interleavings (with and without restarts): pairs strictly increase within a sequence,
    each stamp pairs once, nothing is lost silently."""
    s = StampPairer(max_wait_s=0.5, max_pending=4, reset_backwards_s=reset_backwards_ms / 1000)
    now, emitted, images_in, dets_in = 0.0, [], 0, 0
    sequences = [[]]
    for is_image, t, dt in events:
        now += dt
        if is_image:
            images_in += 1
            r = s.add_image(t * MS, t, now)
        else:
            dets_in += 1
            r = s.add_detections(t * MS, t, now)
        assert s.pending[0] <= 4 and s.pending[1] <= 4
        if r.reset:
            sequences.append([])
        sequences[-1] += r.pairs
        emitted += r.pairs
    for seq in sequences:
        assert all(a.stamp_ns < b.stamp_ns for a, b in zip(seq, seq[1:]))
    assert all(p.image == p.detections for p in emitted)
    s.expire(now + 10)
    image_drops = sum(v for k, v in s.drops.items() if k.startswith("image_"))
    det_drops = sum(v for k, v in s.drops.items() if k.startswith("detections_"))
    assert len(emitted) + image_drops == images_in
    assert len(emitted) + det_drops == dets_in


def test_stamp_rate_limit_keeps_the_first_image_of_each_interval():
    from tdmi_ros.sync import StampRateLimit

    ms = 1_000_000
    limit = StampRateLimit(15.0)  # intervals of 66.7 ms
    kept = [t for t in range(0, 1000, 40) if limit.accept(t * ms)]  # a 25 Hz camera for 1 s
    assert kept == [0, 80, 160, 240, 280, 360, 440, 480, 560, 640, 680, 760, 840, 880, 960]  # 15 of 25
    assert not limit.accept(990 * ms)  # same interval as 960
    assert limit.accept(10 * ms)  # a restarted source (stamps back) starts again
    every = StampRateLimit(0.0)
    assert all(every.accept(t) for t in (5, 5, 4))
    with pytest.raises(ValueError, match="max_rate_hz"):
        StampRateLimit(-1.0)
