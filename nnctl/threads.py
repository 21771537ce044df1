"""BLAS threads for a training, chosen for the model and the machine's load, applied at run time.

On a machine where other processes run, OpenBLAS's threads can make small matrix products 10-30x
slower (they spin waiting for each other). `train.threads: auto` therefore runs a model whose
largest product per step is small on one thread, a large one on every core, and steps down when
other processes keep the cores busy (runnable tasks, sampled after an epoch at most once a second). An
explicit `train.threads: N` is used as given. Applied through threadpoolctl (optional extra
`nnctl[speed]`); without it the setting cannot change a running process, and the summary says so.

A network with large conv/pool layers given 2+ threads runs its layers on parts of the batch in that
many Python threads instead, with BLAS on one thread (`nnctl/batchsplit.py`; summary: batch_split).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnctl import batchsplit

# Largest single matrix product per step (multiply-adds) below which one thread is used. OpenBLAS
# itself runs products up to about this size on one thread (measured on this project's 2-core
# machine, quiet: 100x100x100 takes 8.6 us on one thread and on two; 128x100x100, 1.3M, takes 13.2
# and 8.5 us), so one thread costs nothing there, and it cannot collapse when other processes take
# the cores. Larger products use every core while the machine is quiet.
SMALL_PRODUCT = 1_000_000
# Other processes' load (runnable processes beyond ours) from which cores count as taken.
BUSY_LOAD = 0.75
# Load comes and goes: auto steps down at once, but raises the count again only this long after its
# last change, so a short lull does not bring back threads that the next burst would slow.
RAISE_AFTER = 60.0
RECHECK_EVERY = 1.0  # seconds between load checks (a check reads /proc for well under a millisecond)
ENV_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def env_limit() -> int | None:
    """A thread count the user set in the environment before starting (auto never exceeds it)."""
    for var in ENV_VARS:
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def blas_library(info: list[dict] | None = None) -> dict[str, Any] | None:
    """numpy's BLAS as threadpoolctl sees it: library, version and the kernel it runs (OpenBLAS picks one
    for the CPU at load time unless OPENBLAS_CORETYPE forces it, and the kernel can halve matrix speed:
    on this project's AVX-512 machine a forced Haswell kernel runs sgemm at half the SkylakeX one's)."""
    if info is None:
        info = _loaded_libraries()
        if info is None:
            return None
    blas = next((lib for lib in info if lib.get("user_api") == "blas"), None)
    if blas is None:
        return None
    out = {"library": f"{blas.get('internal_api')} {blas.get('version') or ''}".strip()}
    if blas.get("architecture"):
        out["kernel"] = blas["architecture"]
    forced = os.environ.get("OPENBLAS_CORETYPE", "") if blas.get("internal_api") == "openblas" else ""
    if forced:
        out["kernel_forced_by"] = f"OPENBLAS_CORETYPE={forced}"
    return out


@functools.cache
def _loaded_libraries() -> list[dict] | None:
    """threadpoolctl's reading of the loaded thread-pool libraries, taken once a process (~0.5 ms, which
    every training's start paid): numpy's BLAS and its kernel do not change while the process runs."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return threadpool_info()


def largest_product(network, batch_size: int) -> int:
    """Multiply-adds of the largest weight product in one training step (forward), estimated from the
    weight shapes and the positions each weight is applied at: the pixels of a conv's output, the steps
    of a sequence (a recurrent layer projects all of its input steps in one product)."""
    largest = 0
    for name, (_, shape) in network.param_slices.items():
        if len(shape) < 2:  # biases, scales: no product
            continue
        layer = network.layers[int(name.split(".", 1)[0])]
        positions = int(np.prod(layer.output_shape[1:])) if len(layer.output_shape) > 1 else 1
        if len(layer.input_shape) == 2 and len(layer.output_shape) <= 2:  # a sequence (T, F) in
            positions = max(positions, int(layer.input_shape[0]))
        largest = max(largest, batch_size * positions * int(np.prod(shape)))
    return largest


def _running_threads_of_this_process() -> int:
    running = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            running += stat.read_text().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            pass
    return running


def other_load(samples: int = 5, spacing: float = 0.0) -> float:
    """Runnable tasks of other processes now: the median of a few instantaneous samples of Linux's
    runnable count (/proc/loadavg) less this process's running threads (its BLAS threads may be
    spinning). Elsewhere the 1-minute load average, which lags by a minute (it still counts processes
    that just ended), so it is only the fallback."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as fh:
                runnable = int(fh.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            break
        counts.append(max(0, runnable - _running_threads_of_this_process()))
        if i + 1 < samples:
            time.sleep(spacing)
    if counts:
        return float(sorted(counts)[len(counts) // 2])
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


@dataclass
class ThreadChoice:
    setting: Any  # "auto" or an int, as configured
    threads: int | None = None  # what is applied now (None: not applied)
    reason: str = ""
    changes: list[dict] = field(default_factory=list)  # auto's steps: {"epoch", "threads", "load"}
    split: int | None = None  # conv/pool batches split over this many Python threads (BLAS on one each)
    blas: dict[str, Any] | None = None  # blas_library(): which library and kernel did the products

    def summary(self) -> dict[str, Any]:
        out = {"setting": self.setting, "threads": self.threads, "reason": self.reason}
        if self.split:
            out["batch_split"] = self.split
        if self.changes:
            out["changes"] = self.changes
        if self.blas:
            out["blas"] = self.blas
        return out


class ThreadControl:
    """Applies a ThreadChoice to the BLAS library of this process, and restores it at the end."""

    def __init__(self, setting, network, batch_size: int):
        self.setting = setting
        self.product = largest_product(network, batch_size)
        self.splits = batchsplit.network_splits(network, batch_size)
        self.choice = ThreadChoice(setting)
        self._limiter = None
        self._checked = 0.0
        self._was_down = False

    def start(self) -> ThreadChoice:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            self.choice.reason = "not applied: threadpoolctl is not installed (pip install 'nnctl[speed]')"
            return self.choice
        self._threadpool_limits = threadpool_limits
        self.choice.blas = blas_library()
        if self.setting == "auto":
            threads, self.choice.reason = self.auto()
        else:
            threads, self.choice.reason = int(self.setting), "set by train.threads"
        self._apply(threads)
        self._checked = time.monotonic()
        return self.choice

    def auto(self, others: float | None = None) -> tuple[int, str]:
        """(threads, why) for this model, with `others` processes running (measured now when None)."""
        top = min(cores(), env_limit() or cores())
        if self.product < SMALL_PRODUCT:
            return 1, f"auto: largest product {self.product:,} multiply-adds per step is small"
        others = other_load() if others is None else others
        if others >= BUSY_LOAD and self.splits:
            # Split batches run on Python threads that sleep while they wait (BLAS threads spin), so they
            # keep their share of a busy machine. bench_contention's CNN beside 2 busy processes: 1.76x
            # its quiet time on 2 split threads, 2.7x stepped down to 1; beside 4: 3.25x against 4.61x.
            return top, f"auto: batches split over {top} threads, which sleep while waiting (load {others:.1f})"
        if others >= BUSY_LOAD:
            free = max(1, min(top, cores() - round(others)))
            return free, f"auto: large products, machine busy (load {others:.1f} besides this run)"
        return top, f"auto: largest product {self.product:,} multiply-adds per step"

    def recheck(self, epoch: int) -> None:
        """After an epoch: follow the machine's load (auto only; at most once a second)."""
        if self.setting != "auto" or self.choice.threads is None or self.product < SMALL_PRODUCT:
            return
        if time.monotonic() - self._checked < RECHECK_EVERY:
            return
        self._checked = time.monotonic()
        load = other_load()
        threads, _ = self.auto(load)
        if threads > self.choice.threads and time.monotonic() - self._changed < RAISE_AFTER:
            return
        # A step down needs two checks in a row that agree: one reading can catch a passing process.
        down = threads < self.choice.threads
        if down and not self._was_down:
            self._was_down = True
            return
        self._was_down = down
        if threads != self.choice.threads:
            self.choice.changes.append({"epoch": epoch, "threads": threads, "load": load})
            self._apply(threads)

    def _apply(self, threads: int) -> None:
        if self._limiter is not None:
            self._limiter.restore_original_limits()
        # A network with large conv/pool layers runs them on `threads` Python threads, each a part of the
        # batch, with BLAS on ONE thread for the whole step (nnctl/batchsplit.py says why).
        split = threads > 1 and self.splits
        self._limiter = self._threadpool_limits(limits=1 if split else threads, user_api="blas")
        batchsplit.configure(threads if split else None)
        self.choice.threads = threads
        self.choice.split = threads if split else None
        self._changed = time.monotonic()

    def stop(self) -> None:
        batchsplit.configure(None)
        if self._limiter is not None:
            self._limiter.restore_original_limits()
            self._limiter = None
