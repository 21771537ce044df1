"""Parts of a batch on parallel Python threads, for conv and pooling layers (issue 14).

A conv layer's step is GEMMs plus element-wise passes (padding and im2col copies, relu, the col2im
slice-adds, max pooling). OpenBLAS spreads the GEMMs over its threads, but the element-wise passes run
on the calling thread alone: on the benchmark CNN with 2 BLAS threads that was 9-11 ms of a ~18 ms
step on one core. NumPy releases the GIL for large copies, ufuncs and matmul, so with `parts` = the
training's thread count, conv and max-pool layers run samples [0, n/parts) on the calling thread and
the other parts on worker threads, every GEMM on ONE BLAS thread.

BLAS must then stay on one thread for the whole step, not only inside a split call: after a
multi-threaded GEMM (a dense layer) OpenBLAS's idle workers spin for milliseconds, and beside two
splitting Python threads on two cores that spinning cost more than the split saved (measured: a
2-thread GEMM followed by a split one took 7.0 ms against 2.4 + 2.1). So `nnctl.threads.ThreadControl`
decides per training: when it would apply 2+ BLAS threads and the network has a layer worth
splitting (`network_splits`), it applies ONE BLAS thread and `configure(threads)`; every other layer
then runs on one thread (dense layers split too: the forward by rows, the
backward's two GEMMs side by side; recurrent layers do not). Nothing else turns splitting on, so with one thread (the
reference checkpoints, OPENBLAS_NUM_THREADS=1, small networks) every layer runs its unsplit code.

Results do not depend on timing: each part writes only its own samples' rows; weight gradients are
computed per part and summed part 0 + part 1 + ..., always in that order.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

# Smallest work (multiply-adds of a conv's GEMM, elements of a pooling layer's input) worth splitting:
# a hand-off to a worker thread costs ~15-20 us, a pass over 2^18 float32 values ~30-60 us.
MIN_PRODUCT = 1_000_000  # the same line as nnctl.threads.SMALL_PRODUCT
MIN_ELEMENTS = 1 << 18

_parts = 1  # how many parts a batch is split into (1: splitting is off)
# _parts > 1 as a plain attribute, which layers test before calling worth_splitting: the call alone
# cost a tiny network's step (five calls) ~0.5 us of 15.
on = False
_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def configure(threads: int | None) -> None:
    """Split batches into `threads` parts from now on (None or 1: off). Only for a process whose BLAS
    runs on one thread (see the module's doc)."""
    global _parts, _executor, on
    parts = max(1, int(threads or 1))
    with _lock:
        if _executor is not None and parts != _parts:
            _executor.shutdown(wait=True)
            _executor = None
        _parts = parts
        on = parts > 1


def parts() -> int:
    return _parts


def worth_splitting(layer, n: int, split_work: Callable[[int], tuple[int, int]]) -> bool:
    """Split this call: on, a CPU layer, at least two samples, and split_work(n) = (work, minimum) with work
    at least minimum. split_work is called only when splitting is on. Hot paths test `on` first
    (`batchsplit.on and batchsplit.worth_splitting(...)`), so the common unsplit call costs no call."""
    if _parts < 2 or n < 2 or layer.device.kind != "cpu":
        return False
    work, minimum = split_work(n)
    return work >= minimum


def network_splits(network, batch_size: int) -> bool:
    """Whether a layer of `network` (nested ones included) would split a training batch of this size."""
    stack = list(network.layers)
    while stack:
        layer = stack.pop()
        split_work = getattr(layer, "split_work", None)
        if split_work is not None and layer.device.kind == "cpu":
            work, minimum = split_work(batch_size)
            if work >= minimum:
                return True
        stack.extend(getattr(layer, "layers", None) or ())
    return False


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=max(1, _parts - 1), thread_name_prefix="nnctl-batchsplit")
        return _executor


def bounds(n: int, count: int | None = None) -> list[tuple[int, int]]:
    """[a, b) sample ranges of `count` (default: the configured parts) near-equal parts of n samples."""
    count = max(1, min(n, _parts if count is None else count))
    edges = [n * i // count for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def run(n: int, work: Callable[[int, int, int], object]) -> list:
    """work(i, a, b) for every part i with samples [a, b): part 0 here, the others on worker threads;
    returns their results in part order. An exception is raised after every part has finished."""
    return together([functools.partial(work, i, a, b) for i, (a, b) in enumerate(bounds(n))])


def together(tasks: list[Callable[[], object]]) -> list:
    """Run the tasks at once (the first here, the others on worker threads); their results in order. An
    exception is raised after every task has finished (no thread writes anything after this returns)."""
    pool = _pool()
    # Each worker runs in a copy of the caller's context: NumPy keeps its error settings there (np.errstate),
    # so a training's over="ignore" holds on every part, not only on the caller's (a worker's own context
    # warned of the overflow of a diverging run's optimizer step, or raised under np.seterr/-W error).
    futures = [pool.submit(contextvars.copy_context().run, task) for task in tasks[1:]]
    results: list = []
    error: BaseException | None = None
    try:
        results.append(tasks[0]())
    except BaseException as exc:  # noqa: BLE001  (re-raised below, once no thread writes any more)
        error = exc
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as exc:  # noqa: BLE001
            error = error or exc
    if error is not None:
        raise error
    return results
