"""Shared helpers for the benchmarks: thread pinning, optional PyTorch, timing, reporting.

Import this module FIRST in a benchmark script (before numpy, nnctl or torch): it sets the BLAS /
OpenMP thread-count environment variables, which the libraries read only when they load.
"""

from __future__ import annotations

import os
import sys

# --- threads: must happen before numpy (OpenBLAS) or torch (MKL/OpenMP) is imported ----------------

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
if "numpy" in sys.modules or "torch" in sys.modules:  # too late to take effect: say so loudly
    print("benchmarks/_common.py: numpy/torch was imported before the thread settings; BLAS may not use "
          f"{THREADS} threads.", file=sys.stderr)
for _var in _THREAD_VARS:
    os.environ[_var] = str(THREADS)

# Run from a checkout without installing: put the repository root first on the path.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import argparse  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402


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
    p.add_argument("--profile", action="store_true",
                   help="after the timings, profile nnctl's side with cProfile and print the top functions (stderr)")
    return p


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of fn takes (garbage collected first, so a collection from setup is not counted)."""
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def ratio(torch_s: float | None, nnctl_s: float) -> float | None:
    return None if torch_s is None else torch_s / nnctl_s


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
    return info


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
