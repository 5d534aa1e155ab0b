"""Average precision as poseval's ``computeRPC`` / ``VOCap`` / ``computeMetrics`` (and the PoseTrack21 kit's copy).

The arithmetic follows the official code operation for operation, so the numbers agree to the last
bit: ranking by ``np.array(scores).argsort()[::-1]``, all-point (VOC) interpolated AP in percent, the
total as a plain mean over joints.

Equal scores: the official code leaves their order to numpy's default (unstable) argsort. Up to
numpy 1.24 that is a fixed introsort (the PoseTrack21 kit pins numpy 1.22); numpy >= 1.25 sorts with
SIMD code on AVX-512/AVX2 CPUs and orders ties differently per CPU. Where equal scores carry
different labels (only then does the order change the AP), ``official_argsort`` reproduces the
classic introsort exactly, and ``official_sum`` numpy 1.x's chunked pairwise summation, so results
equal the official kits run with numpy < 1.25 (the PoseTrack21 kit pins 1.22) on any machine.

Kit differences kept here:
* ``posetrack18`` (poseval): recall = hits / n_gt, so a joint with no GT anywhere gets AP NaN when it
  has predictions (left out of the total) but AP 0 when it has none (counted in the total).
* ``posetrack21``: recall = hits / max(n_gt, 1), so such a joint always gets AP 0 and counts.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KITS: tuple[str, ...] = ("posetrack18", "posetrack21")


def _check_kit(kit: str) -> None:
    if kit not in KITS:
        raise ValueError(f"unknown evaluation kit {kit!r}; use one of {KITS}")


_SMALL_QUICKSORT = 15  # numpy's insertion-sort cutoff (npysort/quicksort.cpp)


def _less(a: float, b: float) -> bool:
    """numpy's float ordering for sorting: NaN after everything."""
    return a < b or (b != b and a == a)


def _sift_down(v: list[float], a: list[int], base: int, i: int, n: int) -> None:
    """numpy's sift-down of ``a[base + i]`` within a heap of size ``n`` (1-based)."""
    tmp = a[base + i]
    j = i << 1
    while j <= n:
        if j < n and _less(v[a[base + j]], v[a[base + j + 1]]):
            j += 1
        if _less(v[tmp], v[a[base + j]]):
            a[base + i] = a[base + j]
            i, j = j, j + j
        else:
            break
    a[base + i] = tmp


def _heapsort(v: list[float], a: list[int], start: int, n: int) -> None:
    """numpy's ``aheapsort`` on a[start:start + n] (1-based heap indexing, as in the C code)."""
    base = start - 1
    for l in range(n >> 1, 0, -1):
        _sift_down(v, a, base, l, n)
    while n > 1:
        a[base + n], a[base + 1] = a[base + 1], a[base + n]
        n -= 1
        _sift_down(v, a, base, 1, n)


def official_argsort(values: np.ndarray) -> np.ndarray:
    """Ascending argsort exactly as numpy < 1.25's default ``argsort`` (introsort ``aquicksort``).

    Args:
        values: (N,) float scores.

    Returns:
        (N,) int64 permutation; equal values come out in the order the classic introsort leaves them.
    """
    v = [float(x) for x in np.asarray(values, dtype=np.float64).reshape(-1)]
    n = len(v)
    a = list(range(n))
    if n < 2:
        return np.asarray(a, dtype=np.int64)
    stack: list[tuple[int, int, int]] = []
    pl, pr = 0, n - 1
    cdepth = 2 * (n.bit_length() - 1)  # 2 * npy_get_msb(n)
    while True:
        if cdepth < 0:
            _heapsort(v, a, pl, pr - pl + 1)
        else:
            while pr - pl > _SMALL_QUICKSORT:
                pm = pl + ((pr - pl) >> 1)  # median of three
                if _less(v[a[pm]], v[a[pl]]):
                    a[pm], a[pl] = a[pl], a[pm]
                if _less(v[a[pr]], v[a[pm]]):
                    a[pr], a[pm] = a[pm], a[pr]
                if _less(v[a[pm]], v[a[pl]]):
                    a[pm], a[pl] = a[pl], a[pm]
                vp = v[a[pm]]
                pi, pj = pl, pr - 1
                a[pm], a[pj] = a[pj], a[pm]
                while True:
                    pi += 1
                    while _less(v[a[pi]], vp):
                        pi += 1
                    pj -= 1
                    while _less(vp, v[a[pj]]):
                        pj -= 1
                    if pi >= pj:
                        break
                    a[pi], a[pj] = a[pj], a[pi]
                a[pi], a[pr - 1] = a[pr - 1], a[pi]
                cdepth -= 1
                if pi - pl < pr - pi:  # keep the smaller part, push the larger
                    stack.append((pi + 1, pr, cdepth))
                    pr = pi - 1
                else:
                    stack.append((pl, pi - 1, cdepth))
                    pl = pi + 1
            for pi in range(pl + 1, pr + 1):  # insertion sort
                vi = a[pi]
                vp = v[vi]
                pj = pi
                while pj > pl and _less(vp, v[a[pj - 1]]):
                    a[pj] = a[pj - 1]
                    pj -= 1
                a[pj] = vi
        if not stack:
            break
        pl, pr, cdepth = stack.pop()
    return np.asarray(a, dtype=np.int64)


def rank_descending(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The official ranking ``argsort()[::-1]``, with the classic numpy tie order where it matters.

    Args:
        scores: (N,) detection scores.
        labels: (N,) labels; when no group of equal scores mixes labels, any tie order gives the
            same AP and a fast numpy sort is used.

    Returns:
        (N,) indices, highest score first.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    order = np.argsort(scores, kind="stable")
    s, lab = scores[order], labels[order]
    tied = (s[1:] == s[:-1]) | (np.isnan(s[1:]) & np.isnan(s[:-1]))
    if np.any(tied & (lab[1:] != lab[:-1])):
        order = official_argsort(scores)
    return order[::-1]


def precision_recall(
    scores: np.ndarray, labels: np.ndarray, n_gt: float, kit: str = "posetrack18"
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after each detection, detections ranked by descending score.

    Args:
        scores: (N,) detection scores.
        labels: (N,) 1 for a hit, 0 for a false positive.
        n_gt: number of ground-truth joints.
        kit: ``"posetrack18"`` or ``"posetrack21"`` (recall denominator, see module doc).

    Returns:
        precision, recall: (N,) float64 each.
    """
    _check_kit(kit)
    order = rank_descending(scores, labels)
    hits = np.cumsum(np.asarray(labels)[order] == 1)
    denominator = np.float64(n_gt) if kit == "posetrack18" else max(np.float64(n_gt), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = (1.0 * hits) / denominator
    precision = (1.0 * hits) / np.arange(1, len(order) + 1)
    return precision.astype(np.float64), np.asarray(recall, dtype=np.float64)


_PAIRWISE_BLOCK = 128  # numpy's PW_BLOCKSIZE
_REDUCE_BUFFER = 8192  # numpy 1.x reduced long arrays in buffer-sized chunks


def _pairwise_sum(a: list[float], lo: int, n: int) -> float:
    """numpy's ``pairwise_sum`` for float64 (8-way unrolled blocks, halving above 128 elements)."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    if n <= _PAIRWISE_BLOCK:
        r = a[lo:lo + 8]
        i = 8
        while i < n - (n % 8):
            for j in range(8):
                r[j] += a[lo + i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for k in range(lo + i, lo + n):
            res += a[k]
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a, lo, n2) + _pairwise_sum(a, lo + n2, n - n2)


def official_sum(values: np.ndarray) -> float:
    """``np.sum`` of a float64 vector as numpy 1.x computes it (checked with 1.23): pairwise sums of
    8192-element chunks, added in order.

    numpy 2.4 sums a contiguous vector in one pairwise pass, which differs in the last bits for more
    than 8192 terms; this keeps AP bit-equal to the official kits run with the numpy 1.x they pin.
    """
    a = [float(x) for x in np.asarray(values, dtype=np.float64).reshape(-1)]
    res = 0.0
    for lo in range(0, len(a), _REDUCE_BUFFER):
        res += _pairwise_sum(a, lo, min(_REDUCE_BUFFER, len(a) - lo))
    return res


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated average precision (fraction, not percent), as poseval's ``VOCap``.

    Args:
        recall: (N,) recall after each ranked detection.
        precision: (N,) precision after each ranked detection.

    Returns:
        The area under the precision envelope; NaN when the recall is NaN (no GT).
    """
    mpre = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    mrec = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    # indices where recall changes (NaN != NaN, so a NaN recall keeps every index, as in poseval)
    idx = np.flatnonzero(~np.equal(mrec[1:], mrec[:-1])) + 1
    return official_sum(np.multiply(np.subtract(mrec[idx], mrec[idx - 1]), mpre[idx]))


def joint_ap(scores: np.ndarray, labels: np.ndarray, n_gt: float, kit: str = "posetrack18") -> float:
    """AP in percent of one joint; 0 when there is no detection at all (the official default)."""
    if len(scores) == 0:
        return 0.0
    precision, recall = precision_recall(scores, labels, n_gt, kit)
    return voc_ap(recall, precision) * 100


def mean_ignoring_nan(values: Sequence[float]) -> float:
    """The official total: mean over the joints whose AP is not NaN (NaN if there is none).

    Args:
        values: per-joint APs, in the kit's own joint order (the summation order of the mean).
    """
    column = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    keep = np.argwhere(~np.isnan(column[:, 0]))
    if keep.size == 0:
        return float("nan")
    return float(column[keep, 0].mean())


def group_mean(values: Sequence[float]) -> float:
    """Mean of a joint group (poseval ``getCum``: a NaN member makes the group NaN)."""
    return float(np.asarray(values, dtype=np.float64).reshape(-1, 1)[:, 0].mean())
