"""``tdmi-bench``: per-frame latency, throughput and memory of naive window recompute vs streaming reuse.

For every available backend and person count it feeds the same synthetic stream (one image per
frame, N persons whose boxes jitter by about a pixel, as a standing or slowly moving person does) to
two estimators sharing that backend:

- ``naive``: exact mode without the feature cache: every frame recomputes the backbone for all
  ``2 * delta + 1`` frames of every person's window (what a per-window model call costs);
- ``streaming``: streaming mode with the feature cache: one backbone pass per person per frame.

Pushes alternate between the two estimators so both see the same machine load; the first
``2 * delta`` pushes fill the pipeline and are not timed. Per-frame latency is the wall time of
one ``push`` (crop + backbone + head + decode; CUDA synchronised). The speedup (naive / streaming)
is the headline: absolute times depend on the machine and its load.

Writes ``bench.json`` and ``bench.png`` to ``--out`` and prints a table.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdmi_core.runtime.backends import build_backend, unavailable_reason
from tdmi_core.runtime.config import RuntimeConfig
from tdmi_core.runtime.estimator import StreamingPoseEstimator
from tdmi_core.runtime.loading import load_model
from tdmi_core.runtime.types import TrackedBox

_logger = logging.getLogger(__name__)

__all__ = ["main", "run_benchmark", "BenchResult", "available_backends"]

# The benchmark's cells: a name -> the runtime settings it measures (built by the runtime's backend table).
BENCH_BACKENDS: dict[str, dict[str, str]] = {
    "torch": {"backend": "torch"},
    "torch-bf16": {"backend": "torch", "precision": "bf16"},
    "onnxruntime": {"backend": "onnxruntime"},
    "torch-cuda-fp16": {"backend": "torch", "device": "cuda", "precision": "fp16"},
    "tensorrt": {"backend": "tensorrt", "device": "cuda", "precision": "fp16"},
}


@dataclass
class BenchResult:
    """Numbers of one (backend, persons, mode) cell."""

    backend: str
    persons: int
    mode: str
    frames_timed: int
    latency_ms_median: float
    latency_ms_mean: float
    latency_ms_min: float
    fps: float
    person_fps: float
    backbone_crops_per_frame: float
    peak_rss_mb: float
    feature_cache_mb: float
    cuda_peak_mb: float | None = None
    latencies_ms: list[float] = field(default_factory=list)


def _cpu_supports_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def available_backends() -> list[str]:
    """Benchmark cells that can run here (CUDA ones only with a GPU, bf16 on CPU only with native support)."""
    return [
        name for name, settings in BENCH_BACKENDS.items()
        if unavailable_reason(settings["backend"], settings.get("device", "cpu")) is None
        and (settings.get("precision") != "bf16" or settings.get("device", "cpu") != "cpu" or _cpu_supports_bf16())
    ]


def _make_backend(name: str, model_name: str, cache_dir: Path, threads: int | None, max_batch: int) -> tuple[Any, Any]:
    """An untrained (BatchNorm-calibrated) model of ``model_name`` on the backend of cell ``name``."""
    if name not in BENCH_BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose from {tuple(BENCH_BACKENDS)}")
    cfg = RuntimeConfig(model=model_name, weights="", allow_untrained=True, cache_dir=str(cache_dir),
                        num_threads=threads or 0, opt_batch=min(5, max_batch), max_batch=max_batch,
                        **BENCH_BACKENDS[name])
    model, model_cfg, _ = load_model(cfg)
    return build_backend(cfg, model, model_cfg), model_cfg


class _Stream:
    """Synthetic frames: a noise image shifted per frame, N boxes on a grid with ~1 px jitter."""

    def __init__(self, persons: int, image_hw: tuple[int, int], seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        h, w = image_hw
        self.base = self.rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        cols = int(np.ceil(np.sqrt(persons * w / h)))
        rows = int(np.ceil(persons / cols))
        bw, bh = 0.6 * w / cols, 0.8 * h / rows
        self.boxes = []
        for i in range(persons):
            r, c = divmod(i, cols)
            cx, cy = (c + 0.5) * w / cols, (r + 0.5) * h / rows
            self.boxes.append(np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]))

    def frame(self, i: int) -> tuple[np.ndarray, list[TrackedBox]]:
        image = np.roll(self.base, 2 * i, axis=1)
        tracks = [TrackedBox(k, b + self.rng.uniform(-1.0, 1.0, 4), 0.9) for k, b in enumerate(self.boxes)]
        return image, tracks


def _feature_cache_bytes(est: StreamingPoseEstimator) -> int:
    seen: set[int] = set()
    total = 0
    for t in (tensor for entry in est.cached_features() for tensor in entry):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
    return total


def run_benchmark(
    backend_name: str,
    model_name: str,
    persons: int,
    frames: int,
    image_hw: tuple[int, int] = (720, 1280),
    cache_dir: Path = Path("bench-cache"),
    threads: int | None = None,
    max_batch: int = 64,
    backend_and_cfg: tuple[Any, Any] | None = None,
) -> list[BenchResult]:
    """Time naive and streaming on one backend for one person count; returns both cells."""
    import psutil

    backend, cfg = backend_and_cfg or _make_backend(backend_name, model_name, cache_dir, threads, max_batch)
    is_cuda = backend.device.type == "cuda"
    estimators = {
        "naive": StreamingPoseEstimator(backend, cfg, mode="exact", cache_features=False),
        "streaming": StreamingPoseEstimator(backend, cfg, mode="streaming", cache_features=True),
    }
    stream = _Stream(persons, image_hw)
    warm = 2 * cfg.delta  # from push 2*delta on, every push emits a window whose frames all exist: steady state
    lat: dict[str, list[float]] = {m: [] for m in estimators}
    crops_before: dict[str, int] = {}
    rss_peak: dict[str, float] = {m: 0.0 for m in estimators}
    cache_mb: dict[str, float] = {m: 0.0 for m in estimators}
    cuda_peak: dict[str, float | None] = {m: None for m in estimators}
    proc = psutil.Process()
    for i in range(warm + frames):
        image, tracks = stream.frame(i)
        for mode, est in estimators.items():
            if i == warm:
                crops_before[mode] = est.stats.backbone_crops
            if is_cuda:
                torch.cuda.synchronize(backend.device)
                torch.cuda.reset_peak_memory_stats(backend.device)
            start = time.perf_counter()
            est.push(image, tracks, token=i)
            if is_cuda:
                torch.cuda.synchronize(backend.device)
            elapsed = time.perf_counter() - start
            if i >= warm:
                lat[mode].append(elapsed * 1e3)
                rss_peak[mode] = max(rss_peak[mode], proc.memory_info().rss / 2**20)
                cache_mb[mode] = max(cache_mb[mode], _feature_cache_bytes(est) / 2**20)
                if is_cuda:
                    peak = torch.cuda.max_memory_allocated(backend.device) / 2**20
                    cuda_peak[mode] = max(cuda_peak[mode] or 0.0, peak)
    results = []
    for mode, est in estimators.items():
        ms = lat[mode]
        mean = statistics.fmean(ms)
        results.append(
            BenchResult(
                backend=backend_name,
                persons=persons,
                mode=mode,
                frames_timed=len(ms),
                latency_ms_median=statistics.median(ms),
                latency_ms_mean=mean,
                latency_ms_min=min(ms),
                fps=1e3 / mean,
                person_fps=persons * 1e3 / mean,
                backbone_crops_per_frame=(est.stats.backbone_crops - crops_before[mode]) / len(ms),
                peak_rss_mb=rss_peak[mode],
                feature_cache_mb=cache_mb[mode],
                cuda_peak_mb=cuda_peak[mode],
                latencies_ms=[round(v, 3) for v in ms],
            )
        )
    return results


def _environment(threads: int | None) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "threads_requested": threads,
    }
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                env["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return env


def _table(results: list[BenchResult]) -> str:
    by_key = {(r.backend, r.persons, r.mode): r for r in results}
    head = (
        f"{'backend':<18}{'persons':>8}{'naive ms':>11}{'stream ms':>11}{'speedup':>9}"
        f"{'stream fps':>11}{'person fps':>11}{'crops/f n|s':>13}{'RSS MB':>9}{'cache MB':>10}"
    )
    lines = [head, "-" * len(head)]
    for backend, persons in sorted({(r.backend, r.persons) for r in results}, key=lambda k: (k[0], k[1])):
        n, s = by_key.get((backend, persons, "naive")), by_key.get((backend, persons, "streaming"))
        if n is None or s is None:
            continue
        lines.append(
            f"{backend:<18}{persons:>8}{n.latency_ms_median:>11.1f}{s.latency_ms_median:>11.1f}"
            f"{n.latency_ms_median / s.latency_ms_median:>8.2f}x{s.fps:>11.2f}{s.person_fps:>11.2f}"
            f"{n.backbone_crops_per_frame:>6.1f}|{s.backbone_crops_per_frame:<6.1f}"
            f"{max(n.peak_rss_mb, s.peak_rss_mb):>9.0f}{s.feature_cache_mb:>10.1f}"
        )
    return "\n".join(lines)


def _plot(results: list[BenchResult], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    backends = sorted({r.backend for r in results})
    for k, b in enumerate(backends):
        color = f"C{k}"
        for mode, style in (("naive", "--"), ("streaming", "-")):
            rs = sorted((r for r in results if r.backend == b and r.mode == mode), key=lambda r: r.persons)
            if rs:
                ax1.plot(
                    [r.persons for r in rs], [r.latency_ms_median for r in rs], style,
                    color=color, marker="o", label=f"{b} {mode}",
                )
        pairs = [
            (n.persons, n.latency_ms_median / s.latency_ms_median)
            for n in results
            for s in results
            if n.backend == b == s.backend and n.persons == s.persons and n.mode == "naive" and s.mode == "streaming"
        ]
        if pairs:
            pairs.sort()
            ax2.plot([p for p, _ in pairs], [v for _, v in pairs], color=color, marker="o", label=b)
    ax1.set_xlabel("persons")
    ax1.set_ylabel("median latency per frame (ms)")
    ax1.set_yscale("log")
    ax1.legend(fontsize=7)
    ax1.grid(True, alpha=0.3)
    ax2.set_xlabel("persons")
    ax2.set_ylabel("speedup naive / streaming")
    ax2.axhline(1.0, color="grey", lw=0.8)
    ax2.legend(fontsize=7)
    ax2.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tdmi-bench",
        description="Per-frame latency/throughput/memory of naive window recompute vs streaming feature reuse.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", default="tdmi_w48_384x288", help="model config name or YAML (the paper config by default)")
    p.add_argument("--persons", type=int, nargs="+", default=[1, 3, 5, 10], help="person counts to measure")
    p.add_argument(
        "--backends", nargs="+", default=None, choices=tuple(BENCH_BACKENDS), help="backends (default: all available here)"
    )
    p.add_argument("--frames", type=int, default=None, help="timed frames per cell (default: 3 for W48 models, else 20)")
    p.add_argument("--image-size", type=int, nargs=2, default=(720, 1280), metavar=("H", "W"), help="frame size")
    p.add_argument("--threads", type=int, default=None, help="torch / ONNX Runtime CPU threads (default: library's)")
    p.add_argument("--out", type=Path, default=Path("bench-results"), help="output directory for JSON and plot")
    p.add_argument("--cache-dir", type=Path, default=None, help="ONNX/TensorRT cache (default: <out>/cache)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``tdmi-bench``."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    frames = args.frames if args.frames is not None else (3 if "w48" in args.model else 20)
    if frames < 1 or any(p < 1 for p in args.persons):
        raise SystemExit("tdmi-bench: --frames and --persons must be >= 1")
    backends = args.backends or available_backends()
    missing = sorted(set(backends) - set(available_backends()))
    if missing:
        raise SystemExit(f"tdmi-bench: backends not available here: {missing} (available: {available_backends()})")
    args.out.mkdir(parents=True, exist_ok=True)
    cache_dir = args.cache_dir or args.out / "cache"
    max_batch = max(args.persons) * 5
    results: list[BenchResult] = []
    started = time.perf_counter()
    for name in backends:
        setup_start = time.perf_counter()
        backend_and_cfg = _make_backend(name, args.model, cache_dir, args.threads, max_batch)
        setup_s = time.perf_counter() - setup_start
        _logger.info("backend %s ready in %.1f s", name, setup_s)
        for persons in args.persons:
            cells = run_benchmark(
                name, args.model, persons, frames, tuple(args.image_size), cache_dir, args.threads, max_batch, backend_and_cfg
            )
            results.extend(cells)
            n, s = cells
            _logger.info(
                "%s persons=%d naive %.1f ms streaming %.1f ms (%.2fx)",
                name, persons, n.latency_ms_median, s.latency_ms_median, n.latency_ms_median / s.latency_ms_median,
            )
        del backend_and_cfg
    total_s = time.perf_counter() - started
    report = {
        "model": args.model,
        "frames_timed_per_cell": frames,
        "image_hw": list(args.image_size),
        "environment": _environment(args.threads),
        "total_seconds": round(total_s, 1),
        "speedup_median": {
            f"{n.backend}/{n.persons}": round(n.latency_ms_median / s.latency_ms_median, 3)
            for n in results
            for s in results
            if n.backend == s.backend and n.persons == s.persons and n.mode == "naive" and s.mode == "streaming"
        },
        "results": [asdict(r) for r in results],
    }
    (args.out / "bench.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    _plot(results, args.out / "bench.png", f"{args.model}: naive recompute vs streaming reuse ({report['environment']['cpu']})")
    print(f"tdmi-bench {args.model}, {frames} timed frames per cell, {total_s:.0f} s total")  # CLI output
    print(_table(results))
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
