"""The body of a local worker process. Kept free of heavy imports: the BLAS thread limits must be in
the environment before numpy is first imported, and this module is what a fresh process imports."""

from __future__ import annotations

import os
import signal
import sys
import traceback

terminated: int | None = None  # SIGTERM arrived: finish (or stop) the current task, then exit
pinned_gpu: str | None = None  # the one GPU this worker sees (CUDA_VISIBLE_DEVICES), when the executor pinned it
_numpy_before_limits: bool | None = None  # set in a worker; the limits only work when this is False

BLAS_VARS = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def worker_main(conn, threads: int, preload: str | None, gpu: str | None = None) -> None:
    """Run tasks sent over `conn` until it closes: (task_id, fn, args) -> (task_id, ok, value).

    `gpu`: the id this worker's trials train on; it becomes the only GPU the process sees (set before
    CuPy can load, like the BLAS limits), so a trial's `cuda` is that GPU."""
    global _numpy_before_limits, pinned_gpu
    _numpy_before_limits = "numpy" in sys.modules
    for var in BLAS_VARS:
        os.environ[var] = str(threads)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = pinned_gpu = gpu
    # Ctrl-C reaches every process of the terminal's group; the parent decides what stops and how.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)  # a running trial swaps in its own StopFlag handler
    if preload:
        __import__(preload)  # pay the import cost while the parent is still planning
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        task_id, fn, args = message
        try:
            reply = (task_id, True, fn(*args))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides
            reply = (task_id, False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        if terminated is not None:
            return


def _on_term(signum, frame) -> None:
    global terminated
    terminated = signum


def probe(hold_s: float = 0.0) -> dict:
    """What a worker sees (used by tests): its BLAS variables, whether numpy came before them, its GPU.
    `hold_s` keeps the worker busy that long first, so that tasks sent together reach different workers."""
    if hold_s:
        import time

        time.sleep(hold_s)
    env = {var: os.environ.get(var) for var in BLAS_VARS}
    gpu = {"gpu": pinned_gpu, "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES")}
    return {"env": env, "numpy_before_limits": _numpy_before_limits, "pid": os.getpid(), **gpu}
