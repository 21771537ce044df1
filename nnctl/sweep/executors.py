"""Where trials run, behind one `concurrent.futures.Executor` interface: `submit(fn, *args) -> Future`.

- `ProcessExecutor`: N long-lived local worker processes (spawned, so each sets its BLAS thread
  limit before numpy loads). Each worker runs one task at a time, so when a worker process dies
  only its own task fails (`WorkerDied`), and a fresh worker takes its place.
- `DaskExecutor`: a Dask distributed cluster (`tcp://scheduler:8786`, or a LocalCluster), through
  Dask's own concurrent.futures adapter. Dask's nanny starts workers with 1 BLAS thread each.

Both add `stop_running()`: ask the running tasks to stop (Ctrl-C on the sweep).
"""

from __future__ import annotations

import collections
import importlib.util
import itertools
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

from nnctl.errors import NnctlError

DASK_MISSING = "--executor dask needs Dask distributed: pip install 'nnctl[distributed]'."
SHUTDOWN_GRACE_S = 30.0  # how long stopped tasks get to write their checkpoint before being killed


class WorkerDied(RuntimeError):
    """The worker process running a task exited without answering (crash, out of memory, kill)."""


class TaskError(RuntimeError):
    """A task raised; the message carries the worker's traceback."""


def fair_threads(workers: int) -> int:
    """BLAS threads per worker so that N workers together use the machine's cores once."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def visible_gpus() -> list[str]:
    """Ids of the GPUs this process may use (CUDA_VISIBLE_DEVICES's entries, else 0 .. count-1); a user
    error without CuPy or without a GPU."""
    from nnctl.device import gpu_count, import_cupy

    count = gpu_count(import_cupy())
    if count == 0:
        raise NnctlError("the sweep's config trains on cuda, but CuPy finds no GPU on this machine.")
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return visible[:count] if visible else [str(i) for i in range(count)]


def sweep_gpus(config: dict | None, parallel: int) -> list[str] | None:
    """The GPUs to pin local workers to (worker k gets GPU k mod their number), or None: only when the
    sweep's config trains on `cuda` (any GPU: a config naming cuda:N keeps every trial on GPU N) and more
    than one trial runs at once."""
    device = str(((config or {}).get("train") or {}).get("device", "cpu")).strip().lower()
    if device != "cuda" or parallel < 2:
        return None
    return visible_gpus()


@dataclass
class _Slot:
    process: Any
    conn: Any
    task: tuple[int, Future] | None = None
    gpu: str | None = None


class ProcessExecutor(Executor):
    """`gpus`: pin each worker process to one of these GPU ids (CUDA_VISIBLE_DEVICES), spread evenly; a
    worker started in place of a dead one takes a GPU with the fewest workers (the dead one's)."""

    def __init__(
        self,
        workers: int,
        threads: int | None = None,
        preload: str | None = "nnctl.sweep.trial",
        gpus: list[str] | None = None,
    ):
        if workers < 1:
            raise NnctlError(f"--parallel must be at least 1, got {workers}.")
        self.workers = workers
        self.gpus = list(gpus) if gpus else None
        self.threads = threads or fair_threads(workers)
        self._preload = preload
        self._ctx = multiprocessing.get_context("spawn")
        self._pending: collections.deque = collections.deque()
        self._slots: list[_Slot] = []
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._closing = False
        self._thread: threading.Thread | None = None

    # --- the Executor interface ---

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if kwargs:
            raise TypeError("ProcessExecutor.submit takes positional arguments only")
        future: Future = Future()
        with self._lock:
            if self._closing:
                raise RuntimeError("cannot submit after shutdown")
            self._pending.append((future, fn, args))
            if self._thread is None:
                self._thread = threading.Thread(target=self._dispatch, name="nnctl-sweep-dispatch", daemon=True)
                self._thread.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closing = True
            if cancel_futures:
                while self._pending:
                    future = self._pending.popleft()[0]
                    if future.cancel():
                        future.set_running_or_notify_cancel()  # wakes anyone in concurrent.futures.wait
        if wait and self._thread is not None:
            self._thread.join(SHUTDOWN_GRACE_S)
            if self._thread.is_alive():  # stopped tasks that did not answer in time
                for slot in list(self._slots):
                    slot.process.kill()
                self._thread.join()
        if wait:
            self._close_workers()

    def stop_running(self) -> None:
        """SIGTERM the busy workers: the trial in each stops at its next step and reports `interrupted`."""
        with self._lock:
            for slot in self._slots:
                if slot.task is not None and slot.process.is_alive():
                    os.kill(slot.process.pid, signal.SIGTERM)

    # --- the dispatcher thread ---

    def _next_gpu(self) -> str | None:
        if not self.gpus:
            return None
        taken = collections.Counter(slot.gpu for slot in self._slots)
        return min(self.gpus, key=lambda gpu: (taken[gpu], self.gpus.index(gpu)))

    def _start_worker(self) -> _Slot:
        from nnctl.sweep.worker import worker_main

        gpu = self._next_gpu()
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=worker_main, args=(child, self.threads, self._preload, gpu), name="nnctl-sweep-worker", daemon=True
        )
        process.start()
        child.close()
        return _Slot(process, parent, gpu=gpu)

    def _assign(self) -> bool:
        """Hand pending tasks to idle workers; False once closing and nothing is left."""
        with self._lock:
            while self._pending and (any(s.task is None for s in self._slots) or len(self._slots) < self.workers):
                future, fn, args = self._pending.popleft()
                if not future.set_running_or_notify_cancel():
                    continue
                slot = next((s for s in self._slots if s.task is None), None)
                if slot is None:
                    try:
                        slot = self._start_worker()
                    except Exception as exc:  # noqa: BLE001 - e.g. spawn refused: fail the task, not the thread
                        future.set_exception(exc)
                        continue
                    self._slots.append(slot)
                task_id = next(self._ids)
                try:
                    slot.conn.send((task_id, fn, args))
                except Exception as exc:  # noqa: BLE001 - unpicklable task, or the worker just died
                    future.set_exception(exc)
                    continue
                slot.task = (task_id, future)
            busy = any(s.task is not None for s in self._slots)
            return not (self._closing and not self._pending and not busy)

    def _dispatch(self) -> None:
        while self._assign():
            busy = [s for s in self._slots if s.task is not None]
            waitables = [s.conn for s in busy] + [s.process.sentinel for s in self._slots]
            ready = set(multiprocessing.connection.wait(waitables, timeout=0.2))
            for slot in list(self._slots):
                if slot.task is not None and (slot.conn in ready or _poll(slot.conn)):
                    self._answer(slot)
                elif slot.process.sentinel in ready or not slot.process.is_alive():
                    self._bury(slot)

    def _answer(self, slot: _Slot) -> None:
        task_id, future = slot.task
        try:
            got_id, ok, value = slot.conn.recv()
        except (EOFError, OSError):
            self._bury(slot)
            return
        slot.task = None
        if got_id != task_id:  # cannot happen: one task per worker at a time
            future.set_exception(RuntimeError(f"worker answered task {got_id}, expected {task_id}"))
        elif ok:
            future.set_result(value)
        else:
            future.set_exception(TaskError(value))

    def _bury(self, slot: _Slot) -> None:
        slot.process.join(1)
        code = slot.process.exitcode
        if slot.task is not None:
            reason = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            slot.task[1].set_exception(WorkerDied(f"the worker process died ({reason}) while running this trial"))
        with self._lock:
            self._slots.remove(slot)
        slot.conn.close()

    def _close_workers(self) -> None:
        for slot in self._slots:
            try:
                slot.conn.send(None)
            except (OSError, ValueError):
                pass
        for slot in self._slots:
            slot.process.join(5)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            slot.conn.close()
        self._slots.clear()


def _poll(conn) -> bool:
    try:
        return conn.poll()
    except (EOFError, OSError):
        return False


class DaskExecutor(Executor):
    """Trials on a Dask distributed cluster. The sweep folder must be on a filesystem the workers share."""

    def __init__(self, address: str | None = None, workers: int = 1, client=None):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise NnctlError(DASK_MISSING) from None
        self._own_client, self._closed = client is None, False
        if client is None:
            if address:
                try:
                    client = Client(address, timeout="20s")
                except OSError as exc:
                    raise NnctlError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
            else:  # no address: a cluster of local processes, as a stepping stone to a real one
                client = Client(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True))
        self.client = client
        self._executor = client.get_executor(pure=False)
        self.workers = workers

    def submit(self, fn, /, *args, **kwargs) -> Future:
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait and not cancel_futures)  # Dask's adapter: wait=False cancels
        if wait and self._own_client and not self._closed:
            self._closed = True
            cluster = getattr(self.client, "cluster", None)
            self.client.close()
            if cluster is not None:
                cluster.close()

    def stop_running(self) -> None:
        """Cancel what has not finished (a task already running on a worker thread runs to its end)."""
        self._executor.shutdown(wait=False)


def check_executor(kind: str, address: str | None = None) -> None:
    """Refuse an executor that cannot start, before anything is written (the sweep folder included)."""
    if kind not in ("local", "dask"):
        raise NnctlError(f"--executor must be local or dask, got '{kind}'.")
    if kind == "local" and address:
        raise NnctlError("--address goes with --executor dask.")
    if kind == "dask" and importlib.util.find_spec("distributed") is None:
        raise NnctlError(DASK_MISSING)


def make_executor(kind: str, parallel: int, address: str | None = None, gpus: list[str] | None = None) -> Executor:
    check_executor(kind, address)
    if kind == "local":
        return ProcessExecutor(parallel, gpus=gpus)
    return DaskExecutor(address, workers=parallel)
