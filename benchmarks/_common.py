"""Shared helpers for the benchmarks: thread pinning, optional PyTorch, timing, reporting.

Import this module FIRST in a benchmark script (before numpy, nnctl or torch): it sets the BLAS /
OpenMP thread-count environment variables, which the libraries read only when they load.
"""

# ruff: noqa: E402  (the thread variables must be set before numpy is imported)
from __future__ import annotations

import os
import sys

# --- threads: must happen before numpy (OpenBLAS) or torch (MKL/OpenMP) is imported ----------------

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
_THREAD_VARS = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
if "numpy" in sys.modules or "torch" in sys.modules:  # too late to take effect: say so loudly
    print(
        "benchmarks/_common.py: numpy/torch was imported before the thread settings; BLAS may not use "
        f"{THREADS} threads.",
        file=sys.stderr,
    )
for _var in _THREAD_VARS:
    os.environ[_var] = str(THREADS)

# Run from a checkout without installing: put the repository root first on the path.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import argparse
import cProfile
import gc
import io
import json
import platform
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def import_torch():
    """torch configured for the comparison (THREADS intra-op threads, denormals not flushed), or None if absent."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(THREADS)
    torch.set_flush_denormal(False)
    return torch


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", action="store_true", help="print one JSON object with all figures on stdout")
    p.add_argument("--quick", action="store_true", help="a much smaller workload: a smoke test, not a measurement")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison even if torch is installed")
    p.add_argument(
        "--profile",
        action="store_true",
        help="after the timings, profile nnctl's side with cProfile and print the top functions (stderr)",
    )
    return p


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of fn takes (garbage collected first, so a collection from setup is not counted)."""
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def summarize(times: list[float], warmup: float | None = None, **extra: Any) -> dict[str, Any]:
    """Timings of one side: every timed run, their median and minimum."""
    out: dict[str, Any] = {"times_s": times, "median_s": median(times), "min_s": min(times)}
    if warmup is not None:
        out["warmup_s"] = warmup
    out.update(extra)
    return out


def _cpu_jiffies() -> tuple[int, int] | None:
    """(steal, total) CPU time from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return fields[7], sum(fields)


class StealMeter:
    """Share of CPU time the hypervisor gave to other guests ("steal") since creation: a noise gauge."""

    def __init__(self) -> None:
        self.start = _cpu_jiffies()

    def fraction(self) -> float | None:
        end = _cpu_jiffies()
        if self.start is None or end is None or end[1] == self.start[1]:
            return None
        return round((end[0] - self.start[0]) / (end[1] - self.start[1]), 3)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(torch=None) -> dict[str, Any]:
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": cpu_model(),
        "cpus_visible": os.cpu_count(),
        "threads": THREADS,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
    }
    try:
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    info["blas"] = blas_kernel()
    return info


def blas_kernel() -> str | None:
    """numpy's BLAS and the kernel it runs ("openblas Haswell"), or None without threadpoolctl: the
    short form of what a run's summary.json records (nnctl.threads.blas_library).

    OPENBLAS_CORETYPE picks the kernel: on an AVX-512 CPU, Haswell's (AVX2) does about half the GEMM
    FLOP/s of SkylakeX's, which moves conv and dense timings by up to 2x; PyTorch does not read it."""
    from nnctl.threads import blas_library

    blas = blas_library()
    if blas is None:
        return None
    return f"{blas['library'].split()[0]} {blas.get('kernel', '')}".strip()


def profile_top(fn: Callable[[], Any], top: int = 20) -> str:
    """Run fn under cProfile; the top functions by own time, as text."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def emit(result: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(result, indent=None, sort_keys=False))
    else:
        print("\n".join(lines))


def fmt_ratio(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.2f}x"


def add_sides(result: dict[str, Any], names: tuple[str, ...], times, warmup, losses, sides) -> None:
    """Per-side summaries into `result`, and each other side's time over nnctl's (>1: nnctl faster):
    overall from the medians, and per round, where both sides saw the same machine state."""
    for name in names:
        result[name] = summarize(times[name], warmup[name], train_loss=losses[name]) if name in sides else None
    nnctl = result["nnctl"]
    for name in names[1:]:
        res = result[name]
        result[f"ratio_{name}_over_nnctl"] = None if res is None else res["median_s"] / nnctl["median_s"]
        if res is not None:
            res["ratio_per_round"] = [t / n for t, n in zip(res["times_s"], nnctl["times_s"], strict=True)]


def epoch_line(label: str, res: dict[str, Any] | None, width: int = 8) -> str:
    """One side's seconds per epoch, each timed epoch, warm-up and last loss, as a report line."""
    if res is None:
        return f"{label:<{width}} (torch not installed or --no-torch)"
    each = ", ".join(f"{t:.3f}" for t in res["times_s"])
    return (
        f"{label:<{width}} {res['median_s']:.3f} s/epoch  (median of {len(res['times_s'])}: {each}; "
        f"warm-up {res['warmup_s']:.3f}; last train loss {res['train_loss'][-1]:.4f})"
    )


def nnctl_epoch(experiment, losses: list[float]) -> Callable[[], None]:
    """A callable that trains `experiment` (built with train.epochs=1) for one more epoch through
    nnctl's own trainer and records its training loss."""
    from nnctl.train.trainer import train

    def one_epoch() -> None:
        result = train(experiment)
        assert result.status == "completed", result.status
        losses.append(result.final["train_loss"])

    return one_epoch


def torch_mlp(torch, init: list[tuple[Any, Any]], activation) -> Any:
    """nn.Sequential of Linear layers from nnctl's initial (weight (fan_in, fan_out), bias) pairs,
    with `activation()` between them, so both sides start from the same weights."""
    import numpy as np

    layers: list = []
    for i, (w, b) in enumerate(init):
        linear = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        if i < len(init) - 1:
            layers.append(activation())
    return torch.nn.Sequential(*layers)
