"""BLAS threads for a training, chosen for the model and the machine's load, applied at run time.

On a machine where other processes run, OpenBLAS's threads can make small matrix products 10-30x
slower (they spin waiting for each other). `train.threads: auto` therefore runs a model whose
largest product per step is small on one thread, a large one on every core, and steps down when
other processes keep the cores busy (the 1-minute load average, checked after every epoch). An
explicit `train.threads: N` is used as given. Applied through threadpoolctl (optional extra
`nnctl[speed]`); without it the setting cannot change a running process, and the summary says so.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Largest single matrix product per step (multiply-adds) below which one thread wins even on a quiet
# machine: measured with the benchmarks (a 40-100-100-10 MLP at batch 100, 1M, runs fastest on one
# thread; the 784-256-128-10 MLP at batch 128, 26M, and the benchmark CNN, 14M, on two).
SMALL_PRODUCT = 4_000_000
# Other processes' load (runnable processes beyond ours) from which cores count as taken.
BUSY_LOAD = 0.75
# The 1-minute load average lags: it counts this run's own threads fully only after about a minute,
# so auto steps down at once but raises the count again only this long after its last change.
RAISE_AFTER = 60.0
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


def largest_product(network, batch_size: int) -> int:
    """Multiply-adds of the largest weight product in one training step (forward), estimated from the
    weight shapes and each layer's output positions (pixels of a conv, steps of a sequence)."""
    largest = 0
    for name, (_, shape) in network.param_slices.items():
        if not name.endswith("weight"):
            continue
        layer = network.layers[int(name.split(".", 1)[0])]
        positions = int(np.prod(layer.output_shape[1:])) if len(layer.output_shape) > 1 else 1
        largest = max(largest, batch_size * positions * int(np.prod(shape)))
    return largest


def other_load() -> float:
    """Runnable processes beyond this one, from the 1-minute load average (0 where unknown)."""
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

    def summary(self) -> dict[str, Any]:
        out = {"setting": self.setting, "threads": self.threads, "reason": self.reason}
        if self.changes:
            out["changes"] = self.changes
        return out


class ThreadControl:
    """Applies a ThreadChoice to the BLAS library of this process, and restores it at the end."""

    def __init__(self, setting, network, batch_size: int):
        self.setting = setting
        self.product = largest_product(network, batch_size)
        self.choice = ThreadChoice(setting)
        self._limiter = None

    def start(self) -> ThreadChoice:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            self.choice.reason = "not applied: threadpoolctl is not installed (pip install 'nnctl[speed]')"
            return self.choice
        self._threadpool_limits = threadpool_limits
        if self.setting == "auto":
            threads, self.choice.reason = self.auto(own=0)
        else:
            threads, self.choice.reason = int(self.setting), "set by train.threads"
        self._apply(threads)
        return self.choice

    def auto(self, own: int) -> tuple[int, str]:
        """(threads, why) for this model now; `own` is how many threads this process is running."""
        top = min(cores(), env_limit() or cores())
        if self.product < SMALL_PRODUCT:
            return 1, f"auto: largest product {self.product:,} multiply-adds per step is small"
        others = max(0.0, other_load() - own)
        if others >= BUSY_LOAD:
            free = max(1, min(top, cores() - round(others)))
            return free, f"auto: large products, machine busy (load {others:.1f} besides this run)"
        return top, f"auto: largest product {self.product:,} multiply-adds per step"

    def recheck(self, epoch: int) -> None:
        """After an epoch: follow the machine's load (auto only)."""
        if self.setting != "auto" or self.choice.threads is None or self.product < SMALL_PRODUCT:
            return
        threads, _ = self.auto(own=self.choice.threads)
        if threads > self.choice.threads and time.monotonic() - self._changed < RAISE_AFTER:
            return
        if threads != self.choice.threads:
            self.choice.changes.append({"epoch": epoch, "threads": threads, "load": round(other_load(), 2)})
            self._apply(threads)

    def _apply(self, threads: int) -> None:
        if self._limiter is not None:
            self._limiter.restore_original_limits()
        self._limiter = self._threadpool_limits(limits=threads, user_api="blas")
        self.choice.threads = threads
        self._changed = time.monotonic()

    def stop(self) -> None:
        if self._limiter is not None:
            self._limiter.restore_original_limits()
            self._limiter = None
