"""Pair images with detections by header stamp, with a bounded wait (pure; no ROS imports).

message_filters is not on pip, and the detector copies the image header into its output, so
pairing is an (almost) exact stamp match: an image and a detection array pair when their
stamps differ by at most ``slop_ns``. Each side waits at most ``max_wait_s`` (receive time) for
its partner and at most ``max_pending`` items are held per side; anything else is dropped and
counted by reason:

- ``image_unpaired`` / ``detections_unpaired``: the partner never came within ``max_wait_s``.
- ``image_overflow`` / ``detections_overflow``: more than ``max_pending`` waiting (oldest dropped).
- ``image_stamp_backwards`` / ``image_duplicate_stamp``: an image not newer than the last one
  accepted (a large backward jump instead asks the caller to reset, see :class:`AddResult`).
- ``detections_late``: detections for an image older than the last pair already emitted.
- ``detections_duplicate_stamp``: a second array for a stamp that already has one, waiting or
  already paired. The first one wins: pairing never waits for possible duplicates.
- ``image_stream_reset`` / ``detections_stream_reset``: waiting items of the old sequence
  discarded when the source restarted.

Source restarts: a backward jump of at least ``reset_backwards_s`` starts a new sequence. Images
announce it (``reset``); detections that jump back that far are not "late" but the new sequence
arriving before its images, so they wait like any other (and survive the reset).

Pairs come out in increasing stamp order, which the temporal model needs.
"""
from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

ImageT = TypeVar("ImageT")
DetT = TypeVar("DetT")


@dataclass(frozen=True)
class Pair(Generic[ImageT, DetT]):
    """An image and the detections computed on it (``stamp_ns`` is the image's)."""

    stamp_ns: int
    image: ImageT
    detections: DetT


@dataclass
class AddResult(Generic[ImageT, DetT]):
    """What one ``add_*`` call produced: ready pairs (stamp order), whether time jumped back, and
    the drop reason if the offered item itself was dropped at once."""

    pairs: list[Pair[ImageT, DetT]] = field(default_factory=list)
    reset: bool = False
    dropped: str | None = None


class StampPairer(Generic[ImageT, DetT]):
    """Bounded-wait stamp matcher.

    Args:
        max_wait_s: how long (receive time, seconds) an item waits for its partner.
        max_pending: most items held per side.
        slop_ns: largest stamp difference that still pairs (0 = exact match).
        reset_backwards_s: an image stamp this far (seconds) behind the last accepted one means
            the source restarted (bag loop, sim time reset): state is cleared and ``reset`` set.
    """

    def __init__(
        self, max_wait_s: float = 0.5, max_pending: int = 30, slop_ns: int = 0, reset_backwards_s: float = 1.0
    ) -> None:
        if max_wait_s <= 0 or max_pending < 1 or slop_ns < 0 or reset_backwards_s <= 0:
            raise ValueError(
                f"need max_wait_s > 0, max_pending >= 1, slop_ns >= 0, reset_backwards_s > 0; got "
                f"{max_wait_s}, {max_pending}, {slop_ns}, {reset_backwards_s}"
            )
        self.max_wait_s = float(max_wait_s)
        self.max_pending = int(max_pending)
        self.slop_ns = int(slop_ns)
        self.reset_backwards_ns = int(reset_backwards_s * 1e9)
        self.drops: Counter[str] = Counter()
        self.pairs_emitted = 0
        self.resets = 0
        self._images: OrderedDict[int, tuple[float, ImageT]] = OrderedDict()
        self._dets: OrderedDict[int, tuple[float, DetT]] = OrderedDict()
        self._last_image_ns: int | None = None
        self._last_pair_ns: int | None = None
        self._paired_dets: deque[int] = deque(maxlen=self.max_pending)  # to tell duplicates from late ones

    def reset(self) -> None:
        """Forget everything waiting and the stamp history (counters are kept)."""
        self._images.clear()
        self._dets.clear()
        self._last_image_ns = None
        self._last_pair_ns = None
        self._paired_dets.clear()

    def _restart(self, old_last_image_ns: int) -> None:
        """A new sequence: discard the old one's waiting items, keep detections that already jumped back."""
        new_dets = [(s, v) for s, v in self._dets.items() if old_last_image_ns - s >= self.reset_backwards_ns]
        self.drops["image_stream_reset"] += len(self._images)
        self.drops["detections_stream_reset"] += len(self._dets) - len(new_dets)
        self.reset()
        self._dets.update(new_dets)
        self.resets += 1

    @property
    def pending(self) -> tuple[int, int]:
        """(images waiting, detection arrays waiting)."""
        return len(self._images), len(self._dets)

    def add_image(self, stamp_ns: int, image: ImageT, now_s: float) -> AddResult[ImageT, DetT]:
        """Offer an image received at ``now_s`` (monotonic seconds)."""
        result: AddResult[ImageT, DetT] = AddResult()
        if self._last_image_ns is not None and stamp_ns <= self._last_image_ns:
            if self._last_image_ns - stamp_ns >= self.reset_backwards_ns:
                self._restart(self._last_image_ns)
                result.reset = True
            else:
                result.dropped = "image_duplicate_stamp" if stamp_ns == self._last_image_ns else "image_stamp_backwards"
                self.drops[result.dropped] += 1
                self._flush_expired(now_s)
                return result
        self._last_image_ns = stamp_ns
        self._images[stamp_ns] = (now_s, image)
        result.pairs = self._match(now_s)
        return result

    def add_detections(self, stamp_ns: int, detections: DetT, now_s: float) -> AddResult[ImageT, DetT]:
        """Offer a detection array (stamped with its image's stamp) received at ``now_s``."""
        result: AddResult[ImageT, DetT] = AddResult()
        # as far behind the last image as an image that restarts the sequence: a restarted source
        # whose images have not come yet, so it waits (and _restart keeps it)
        restarted = self._last_image_ns is not None and self._last_image_ns - stamp_ns >= self.reset_backwards_ns
        reason = None
        if stamp_ns in self._dets or (not restarted and stamp_ns in self._paired_dets):
            reason = "detections_duplicate_stamp"
        elif self._last_pair_ns is not None and stamp_ns <= self._last_pair_ns and not restarted:
            reason = "detections_late"
        if reason is not None:
            self.drops[reason] += 1
            result.dropped = reason
            self._flush_expired(now_s)
            return result
        self._dets[stamp_ns] = (now_s, detections)
        result.pairs = self._match(now_s)
        return result

    def expire(self, now_s: float) -> None:
        """Drop items that waited longer than ``max_wait_s`` (call periodically, e.g. from a timer)."""
        self._flush_expired(now_s)

    def _flush_expired(self, now_s: float) -> None:
        for queue, reason in ((self._images, "image_unpaired"), (self._dets, "detections_unpaired")):
            while queue and now_s - next(iter(queue.values()))[0] > self.max_wait_s:
                queue.popitem(last=False)
                self.drops[reason] += 1
        # sorted insertion is not guaranteed for detections; keep each side bounded
        for queue, reason in ((self._images, "image_overflow"), (self._dets, "detections_overflow")):
            while len(queue) > self.max_pending:
                oldest = min(queue)
                del queue[oldest]
                self.drops[reason] += 1

    def _find_partner(self, stamp_ns: int) -> int | None:
        if stamp_ns in self._dets:
            return stamp_ns
        if self.slop_ns == 0:
            return None
        best = min(self._dets, key=lambda s: abs(s - stamp_ns), default=None)
        if best is not None and abs(best - stamp_ns) <= self.slop_ns:
            return best
        return None

    def _match(self, now_s: float) -> list[Pair[ImageT, DetT]]:
        self._flush_expired(now_s)
        ready: list[Pair[ImageT, DetT]] = []
        for img_ns in sorted(self._images):
            det_ns = self._find_partner(img_ns)
            if det_ns is None:
                continue
            _, image = self._images.pop(img_ns)
            _, dets = self._dets.pop(det_ns)
            self._paired_dets.append(det_ns)
            ready.append(Pair(img_ns, image, dets))
        if not ready:
            return ready
        # images older than the newest pair can no longer be emitted in order: they are unpaired
        newest = ready[-1].stamp_ns
        for img_ns in [s for s in self._images if s < newest]:
            del self._images[img_ns]
            self.drops["image_unpaired"] += 1
        # (detections from as far back as a restart wait for their images and expire by time)
        for det_ns in [s for s in self._dets if newest - self.reset_backwards_ns < s < newest - self.slop_ns]:
            del self._dets[det_ns]
            self.drops["detections_unpaired"] += 1
        self._last_pair_ns = newest
        self.pairs_emitted += len(ready)
        return ready


class StampRateLimit:
    """Accept at most one message per ``1 / max_rate_hz`` of header stamps: the first of each stamp interval.

    By stamps, not arrival times, so the choice does not depend on transport delays and two nodes with
    the same rate choose the same images. On a 25 Hz camera with 15 Hz it keeps 15 of 25 (intervals of
    40 or 80 ms); a stamp that goes back (a restarted source) starts again. ``max_rate_hz`` 0 accepts all.
    """

    def __init__(self, max_rate_hz: float) -> None:
        if not max_rate_hz >= 0:
            raise ValueError(f"max_rate_hz must be >= 0, got {max_rate_hz}")
        self.period_ns = round(1e9 / max_rate_hz) if max_rate_hz > 0 else 0
        self._last_interval: int | None = None

    def accept(self, stamp_ns: int) -> bool:
        """Whether a message stamped ``stamp_ns`` is the first of its interval."""
        if self.period_ns == 0:
            return True
        interval = stamp_ns // self.period_ns
        if self._last_interval is not None and interval == self._last_interval:
            return False
        self._last_interval = interval
        return True
