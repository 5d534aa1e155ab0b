"""Bootstrap intervals over frames: resample frames with replacement, recompute the statistic.

Samples of one frame (its joints, people, views) are correlated, so frames, not samples, are the
unit resampled. A ``FrameBootstrap`` draws the resamples once (as counts per frame) so every
statistic computed from it, for any method or subset, sees the same resampled frames: paired
differences and ratios between methods are then taken replicate by replicate.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

@dataclass(frozen=True)
class Interval:
    """A statistic and its bootstrap percentile interval."""

    value: float
    low: float
    high: float


class FrameBootstrap:
    """Resamples of the frames of one sample set.

    Args:
        frames: frame id of each sample ``[N]``; statistics take values aligned with it.
        n_boot: number of resamples.
        seed: seed of the resampling.
    """

    def __init__(self, frames: np.ndarray, n_boot: int = 1000, seed: int = 0) -> None:
        unique, self._index = np.unique(frames, return_inverse=True)
        n = len(unique)
        rng = np.random.default_rng(seed)
        # float counts: the products below then run in BLAS (exact for integers this small)
        draws = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot) if n else np.zeros((n_boot, 0))
        self._counts = draws.astype(float)

    def _select(self, values: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        return (values, self._index) if mask is None else (values[mask], self._index[mask])

    def medians(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Median of ``values[mask]`` in each resample ``[n_boot]`` (NaN where a resample holds none).

        Exactly ``np.median`` of the resampled multiset (a frame drawn k times counts its samples k
        times), found in two steps so it costs ~``n_boot·√N``, not ``n_boot·N``: the sorted samples are
        cut into √N blocks, per-frame block counts locate the block holding each resample's middle
        position, and only that block is scanned sample by sample.
        """
        values, index = self._select(values, mask)
        order = np.argsort(values)
        values, index = values[order], index[order]
        n, (n_boot, n_frames) = len(values), self._counts.shape
        if n == 0:
            return np.full(n_boot, np.nan)
        blocks = max(1, int(np.sqrt(n)))
        block_of = np.arange(n) * blocks // n
        starts = np.searchsorted(block_of, np.arange(blocks + 1))  # block b is samples starts[b]:starts[b+1]
        per_frame = np.bincount(index * blocks + block_of, minlength=n_frames * blocks).reshape(n_frames, blocks)
        through = np.cumsum(self._counts @ per_frame, axis=1)  # resampled samples up to each block's end
        total = through[:, -1]

        def value_at(position: np.ndarray) -> np.ndarray:
            """The sorted resampled multiset's element at 0-based ``position``, per resample."""
            block = np.minimum((through <= position[:, None]).sum(axis=1), blocks - 1)
            before = np.where(block > 0, through[np.arange(n_boot), block - 1], 0.0)
            found = np.empty(n_boot)
            for b in np.unique(block):
                reps, lo, hi = np.flatnonzero(block == b), starts[b], starts[b + 1]
                cumulative = np.cumsum(self._counts[np.ix_(reps, index[lo:hi])], axis=1)
                inside = (cumulative <= (position[reps] - before[reps])[:, None]).sum(axis=1)
                found[reps] = values[lo + np.minimum(inside, hi - lo - 1)]
            return found

        middle = (value_at((total - 1) // 2) + value_at(total // 2)) / 2
        return np.where(total > 0, middle, np.nan)

    def means(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Mean of ``values[mask]`` in each resample ``[n_boot]``."""
        values, index = self._select(values, mask)
        n_frames = self._counts.shape[1]
        sums = self._counts @ np.bincount(index, weights=values, minlength=n_frames)
        sizes = self._counts @ np.bincount(index, minlength=n_frames)
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / sizes


def interval(value: float, replicates: np.ndarray, level: float = 0.95) -> Interval:
    """Percentile interval of the replicates around the full-sample ``value``."""
    if not np.isfinite(replicates).any():
        return Interval(float(value), np.nan, np.nan)
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(replicates, [tail, 100 - tail])
    return Interval(float(value), float(low), float(high))


def median_interval(boot: FrameBootstrap, values: np.ndarray, mask: np.ndarray | None = None) -> Interval:
    """Median of ``values[mask]`` with its interval."""
    selected = values if mask is None else values[mask]
    value = float(np.median(selected)) if selected.size else np.nan
    return interval(value, boot.medians(values, mask))


def mean_interval(boot: FrameBootstrap, values: np.ndarray, mask: np.ndarray | None = None) -> Interval:
    """Mean of ``values[mask]`` with its interval."""
    selected = values if mask is None else values[mask]
    value = float(np.mean(selected)) if selected.size else np.nan
    return interval(value, boot.means(values, mask))


def paired_median_intervals(
    boot: FrameBootstrap, a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None
) -> tuple[Interval, Interval]:
    """``median(a) − median(b)`` and ``median(a) ÷ median(b)`` on the same samples, resample by resample."""
    a_sel, b_sel = (a, b) if mask is None else (a[mask], b[mask])
    if a_sel.size == 0:
        return Interval(np.nan, np.nan, np.nan), Interval(np.nan, np.nan, np.nan)
    med_a, med_b = np.median(a_sel), np.median(b_sel)  # numpy floats: x / 0 is inf, not an exception
    reps_a, reps_b = boot.medians(a, mask), boot.medians(b, mask)
    with np.errstate(invalid="ignore", divide="ignore"):
        return interval(med_a - med_b, reps_a - reps_b), interval(med_a / med_b, reps_a / reps_b)
