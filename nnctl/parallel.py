"""Data-parallel training over MPI: the `comm` the trainer sees, and the `--workers N` launcher.

The trainer talks to a comm with `rank`, `size`, `reduce_step(...)` (one Allreduce per step on the
flat gradient buffer, carrying the divergence and stop flags with it; or, with a sharded update,
`update_part` / `gather`: a Reduce_scatter, each rank steps its part, an Allgatherv), `sum`,
`allgather`, `broadcast` and `allreduce(buffer)`. With one process it is `SingleProcess`, whose methods do
nothing, so the loop has one code path and a one-process run is exactly what it was before MPI.

`world()` finds the MPI world from the launcher's environment (MPICH/Hydra, Open MPI, MVAPICH,
Slurm's PMI) and imports mpi4py only when that world has more than one process. `launch()` is
`nnctl train --workers N`: it runs the same command under `mpiexec -n N`, forwards Ctrl-C and
SIGTERM to it once (Hydra passes them on to every rank), and turns a rank that died into a message
naming the rank.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

# Environment variables that hold the world size / rank under the common MPI launchers.
SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")
RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")
LAUNCH_DIR_VAR = "NNCTL_LAUNCH_DIR"  # set by launch(): ranks write their pid (and rank 0 the run dir) there
SHARD_VAR = "NNCTL_SHARD_UPDATE"  # "0": every rank runs the whole optimizer step after one Allreduce
SHARED_VAR = "NNCTL_SHARED_MEMORY"  # "0": the sharded update's exchanges through MPI collectives even on one machine
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def world_size() -> int:
    """The size of the MPI world this process was started in (1 when not under an MPI launcher)."""
    for var in SIZE_VARS:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 1


class SingleProcess:
    """The comm of a one-process run: every collective is the identity."""

    rank = 0
    size = 1
    stream: tuple[int, ...] = ()  # appended to per-epoch random streams (empty: today's streams)

    def __init__(self) -> None:
        self.hosts = [socket.gethostname()]
        self.reduce_seconds = 0.0

    def update_part(self, optimizer, n: int) -> slice | None:
        return None

    def update_mode(self, optimizer, n: int) -> str:
        return "replicated"

    def reduce_step(
        self, grads, scale: float, diverged: bool, signum: int | None, part: slice | None = None
    ) -> tuple[bool, int | None]:
        return diverged, signum

    def gather(self, buffer, part) -> None:
        pass

    def close(self) -> None:
        pass

    def allreduce(self, buffer):
        return buffer

    def sum(self, value: float) -> float:
        return value

    def allgather(self, obj) -> list:
        return [obj]

    def broadcast(self, array) -> None:
        pass

    def barrier(self) -> None:
        pass

    def abort(self, code: int) -> None:
        raise SystemExit(code)


# Gradients up to this many numbers travel in one message with the stop flags (copying them in and
# out costs less than a second message, ~2 us); larger ones are reduced in place and the flags
# follow in a 3-number message (at 235k parameters the two copies cost more than the message).
PACK_LIMIT = 2048  # the digits MLP of tests/parallel (2,778) goes in place, the diabetes net packed
# Up to this many ranks, all on one machine, the sharded update exchanges through shared memory
# (SharedExchange): every rank reads every rank's slot of its part, which stays cheap for a few.
SHARED_MAX_RANKS = 4


class MPIComm:
    """COMM_WORLD through mpi4py. Collectives block; every rank must call them in the same order."""

    def __init__(self) -> None:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            sys.stderr.write(
                f"error: this process runs in an MPI world of {world_size()} ranks, but mpi4py is not installed "
                f"({exc}). Install it with: pip install 'nnctl[mpi]' (or mpi4py built against your MPI).\n"
            )
            raise SystemExit(2) from None
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.stream = (self.rank,)
        self.hosts = self.comm.allgather(MPI.Get_processor_name())
        self.reduce_seconds = 0.0  # time spent in the per-step collectives (includes waiting for slower ranks)
        self._buffer = None  # the flags, and small gradients packed with them
        self._part = None  # this rank's part of the summed gradients (sharded update)
        self._parts = None  # (n, counts, offsets) of the sharded update's layout
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks on this machine
        self.one_machine = node.Get_size() == self.size
        node.Free()
        self._shared: SharedExchange | None = None
        self._no_room: tuple | None = None  # (n, dtype) of a window /dev/shm had no room for
        # Rank 0's settings for every rank: a variable in one rank's environment only (Open MPI forwards
        # none without -x) must not make the ranks mix different exchanges (a hang, or an MPI abort).
        self._shard_on, self._shared_on = self.comm.bcast(
            (os.environ.get(SHARD_VAR, "1") != "0", os.environ.get(SHARED_VAR, "1") != "0"), root=0
        )

    def update_part(self, optimizer, n: int) -> slice | None:
        """The entries of the flat buffers this rank's optimizer step updates, or None for all of them.

        Sharded update (ZeRO stage 1, without partitioning the memory): instead of one Allreduce and
        the whole step on every rank, a Reduce_scatter gives each rank the summed gradient of its
        part, it steps that part, and an Allgatherv of the parameters puts the parts together. The
        two collectives move what one Allreduce moves (bare, 2 ranks of bench_dp.py's machine, 0.94 MB:
        71 + 44 us against 117 us) and each rank runs 1/N of the update: Adam's ~0.28 ms of a ~2.7 ms step on the MLP of
        bench_dp.py. With all ranks on one machine (and at most SHARED_MAX_RANKS) the two exchanges go
        through shared memory instead (SharedExchange). Every entry is still the one-process update of
        the global batch, computed once and copied, so the ranks' parameters stay identical. Only for
        elementwise rules without clip_norm and buffers too large to travel packed with the flags.
        Measured on 2 ranks (epochs alternating in one job): MLP-512 178.6k -> 185.2k (collectives) ->
        190.0k samples/s (shared memory); CNN 4,343 -> 4,268 -> 4,466."""
        if n <= PACK_LIMIT or not optimizer.shardable() or not self._shard_on:
            return None
        return shard(n, self.rank, self.size)

    def _layout(self, n: int):
        """Entry counts and offsets of every rank's part of n entries (the Reduce_scatter / Allgatherv layout)."""
        if self._parts is None or self._parts[0] != n:
            bounds = [shard(n, r, self.size) for r in range(self.size)]
            self._parts = (n, [b.stop - b.start for b in bounds], [b.start for b in bounds])
        return self._parts[1], self._parts[2]

    def update_mode(self, optimizer, n: int) -> str:
        """How the step runs, for the summary: "replicated" (Allreduce, every rank the whole update),
        "sharded" (Reduce_scatter / Allgatherv) or "sharded, shared memory" (SharedExchange)."""
        if self.update_part(optimizer, n) is None:
            return "replicated"
        return "sharded, shared memory" if self._shared_ok() and self._no_room is None else "sharded"

    def _shared_ok(self) -> bool:
        return self.one_machine and self.size <= SHARED_MAX_RANKS and self._shared_on

    def _exchange(self, n: int, dtype) -> SharedExchange | None:
        """The shared-memory exchange for n entries, or None to use MPI's collectives (see SharedExchange)."""
        if not self._shared_ok() or self._no_room == (n, str(dtype)):
            return None
        if self._shared is None or not self._shared.fits(n, dtype):
            if self._shared is not None:
                self._shared.free()
                self._shared = None
            # The window's pages are taken from /dev/shm when first written: where it has no room (Docker's
            # default is 64 MB) a rank would die of SIGBUS mid-step. Every rank agrees, then all fall back.
            room = _shm_room(SharedExchange.nbytes(n, dtype, self.size))
            if not self.comm.allreduce(room, op=self.MPI.LAND):
                self._no_room = (n, str(dtype))
                return None
            self._shared = SharedExchange(
                self.MPI, self.comm, n, dtype, [shard(n, r, self.size) for r in range(self.size)]
            )
        return self._shared

    def close(self) -> None:
        """Free the shared-memory window (collective: every rank calls it after training returns). MPICH
        exits cleanly with it held, but MPI does not promise that at Finalize."""
        if self._shared is not None:
            self._shared.free()
            self._shared = None

    def gather(self, buffer, part) -> None:
        """Every rank's part of `buffer` (updated there) onto every rank; nothing when part is None."""
        if part is None:
            return
        t0 = time.perf_counter()
        shared = self._exchange(buffer.size, buffer.dtype)
        if shared is not None:
            shared.gather(buffer, self.rank)
        else:
            counts, offsets = self._layout(buffer.size)
            self.comm.Allgatherv(self.MPI.IN_PLACE, [buffer, (counts, offsets)])
        self.reduce_seconds += time.perf_counter() - t0

    def reduce_step(
        self, grads, scale: float, diverged: bool, signum: int | None, part: slice | None = None
    ) -> tuple[bool, int | None]:
        """Sum `grads * scale` over the ranks in place (with `part`, see update_part: only grads[part]
        is the sum afterwards), agreeing at the same time on whether any rank's loss diverged and
        whether any rank got SIGINT or SIGTERM (three numbers after the gradients).
        Returns (diverged, signum) as every rank agrees on them."""
        import numpy as np

        n = grads.size
        if part is not None and (shared := self._exchange(n, grads.dtype)) is not None:
            t0 = time.perf_counter()
            flags = shared.reduce(grads, scale, _flags(diverged, signum), self.rank)
            self.reduce_seconds += time.perf_counter() - t0
            agreed = signal.SIGTERM if flags[2] > 0 else signal.SIGINT if flags[1] > 0 else None
            return bool(flags[0] > 0), agreed
        packed = n <= PACK_LIMIT
        size = n + 3 if packed else 3
        if self._buffer is None or self._buffer.size != size or self._buffer.dtype != grads.dtype:
            self._buffer = np.empty(size, dtype=grads.dtype)
        buf = self._buffer
        flags = buf[-3:]
        np.multiply(grads, grads.dtype.type(scale), out=buf[:n] if packed else grads)
        flags[:] = _flags(diverged, signum)
        t0 = time.perf_counter()
        if part is not None:
            counts, _ = self._layout(n)
            if self._part is None or self._part.size != counts[self.rank] or self._part.dtype != grads.dtype:
                self._part = np.empty(counts[self.rank], dtype=grads.dtype)
            self.comm.Reduce_scatter(grads, self._part, counts, op=self.MPI.SUM)
            grads[part] = self._part
        elif not packed:
            self.comm.Allreduce(self.MPI.IN_PLACE, grads, op=self.MPI.SUM)
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        self.reduce_seconds += time.perf_counter() - t0
        if packed:
            grads[...] = buf[:n]
        agreed = signal.SIGTERM if flags[2] > 0 else signal.SIGINT if flags[1] > 0 else None
        return bool(flags[0] > 0), agreed

    def allreduce(self, buffer):
        """Sum a NumPy buffer over the ranks, in place."""
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        return buffer

    def sum(self, value: float) -> float:
        return float(self.comm.allreduce(float(value), op=self.MPI.SUM))

    def allgather(self, obj) -> list:
        return self.comm.allgather(obj)

    def broadcast(self, array) -> None:
        """Rank 0's values into `array` on every rank."""
        self.comm.Bcast(array, root=0)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)


SHM_DIR = "/dev/shm"  # where MPICH (and Open MPI's default) back shared windows
SHM_HEADROOM = 1.25  # MPI's own segments, other jobs


def _shm_room(nbytes: int) -> bool:
    """Whether SHM_DIR has room for a shared window of nbytes (True where there is no such folder)."""
    try:
        st = os.statvfs(SHM_DIR)
    except OSError:
        return True
    return st.f_bavail * st.f_frsize >= nbytes * SHM_HEADROOM


def _flags(diverged: bool, signum: int | None) -> tuple[int, int, int]:
    """The three numbers the ranks add up each step: diverged, got SIGINT, got SIGTERM."""
    return (1 if diverged else 0, 1 if signum == signal.SIGINT else 0, 1 if signum not in (None, signal.SIGINT) else 0)


class SharedExchange:
    """The sharded update's two exchanges through memory that every rank of one machine maps (an
    MPI-3 shared window), instead of a Reduce_scatter and an Allgatherv.

    reduce: each rank writes grads x scale and its flags into its own slot, all meet at a Barrier, and
    each adds up its part of every slot, in rank order. gather: each rank writes its part of a buffer
    into a common stage, a Barrier, each copies the others' parts out. A pass or two over memory
    instead of MPI's copies through its shared-memory cells: on the benchmark CNN with 2 ranks the
    collectives took ~0.7 ms of a ~14.5 ms step against ~0.2 ms bare, its buffers being cold after the
    convolutions. Every rank reads every rank's slot of its part, so this is for a few ranks
    (SHARED_MAX_RANKS). Slots and stages alternate between two copies: a rank may write the next
    exchange's while a slower one still reads this one's, but it cannot start the one after before
    every rank has passed the next exchange's Barrier."""

    def __init__(self, MPI, comm, n: int, dtype, parts: list[slice]) -> None:
        import numpy as np

        self.comm, self.n, self.dtype, self.parts = comm, n, np.dtype(dtype), parts
        item = self.dtype.itemsize
        slots, stage = 2 * (n + 3), 2 * n  # every rank's two slots; the two stages on rank 0's memory
        size = slots + (stage if comm.Get_rank() == 0 else 0)
        self.window = MPI.Win.Allocate_shared(size * item, item, comm=comm)
        memory = [self.window.Shared_query(rank)[0] for rank in range(comm.Get_size())]
        self.slots = [np.frombuffer(m, dtype=self.dtype, count=slots).reshape(2, n + 3) for m in memory]
        self.stages = np.frombuffer(memory[0], dtype=self.dtype, count=stage, offset=slots * item).reshape(2, n)
        self.window.Lock_all(MPI.MODE_NOCHECK)  # one passive epoch for the whole run: Sync + Barrier per exchange
        self.reduces = self.gathers = 0

    @staticmethod
    def nbytes(n: int, dtype, size: int) -> int:
        """The window's bytes over all ranks: every rank's two slots, and the two stages."""
        import numpy as np

        return (size * 2 * (n + 3) + 2 * n) * np.dtype(dtype).itemsize

    def fits(self, n: int, dtype) -> bool:
        return n == self.n and dtype == self.dtype

    def _meet(self) -> None:
        self.window.Sync()  # this rank's writes visible to the others (MPI's shared-memory model) ...
        self.comm.Barrier()
        self.window.Sync()  # ... and theirs to this rank

    def reduce(self, grads, scale: float, flags, rank: int) -> list[float]:
        """grads[parts[rank]] = the sum over ranks of their grads x scale; the summed flags."""
        import numpy as np

        n, part, copy = self.n, self.parts[rank], self.reduces % 2
        self.reduces += 1
        mine = self.slots[rank][copy]
        np.multiply(grads, grads.dtype.type(scale), out=mine[:n])
        mine[n:] = flags
        self._meet()
        rows = [slot[copy] for slot in self.slots]
        np.add(rows[0][part], rows[1][part], out=grads[part])
        for row in rows[2:]:
            grads[part] += row[part]
        return [sum(float(row[n + i]) for row in rows) for i in range(3)]

    def gather(self, buffer, rank: int) -> None:
        """Every rank's part of buffer onto every rank."""
        stage = self.stages[self.gathers % 2]
        self.gathers += 1
        stage[self.parts[rank]] = buffer[self.parts[rank]]
        self._meet()
        for other, part in enumerate(self.parts):
            if other != rank:
                buffer[part] = stage[part]

    def free(self) -> None:
        self.window.Unlock_all()
        self.window.Free()


_WORLD: SingleProcess | MPIComm | None = None


def world() -> SingleProcess | MPIComm:
    """This process's comm: MPIComm in an MPI world of more than one process, else SingleProcess."""
    global _WORLD
    if _WORLD is None:
        _WORLD = MPIComm() if world_size() > 1 else SingleProcess()
        if _WORLD.size > 1 and os.environ.get(LAUNCH_DIR_VAR):
            folder = Path(os.environ[LAUNCH_DIR_VAR])
            (folder / f"rank-{_WORLD.rank}.pid").write_text(f"{os.getpid()} {socket.gethostname()}\n")
    return _WORLD


def note_run_dir(path) -> None:
    """Rank 0 tells the launcher where the run lives (for its message when a rank dies)."""
    folder = os.environ.get(LAUNCH_DIR_VAR)
    if folder:
        (Path(folder) / "run_dir").write_text(str(path))


def shard(n: int, rank: int, size: int) -> slice:
    """Rank `rank`'s contiguous part of n items split over `size` ranks (sizes differ by at most one)."""
    return slice(n * rank // size, n * (rank + 1) // size)


# --- the launcher: nnctl train --workers N ------------------------------------------------------


def find_mpiexec() -> str | None:
    """The mpiexec beside this Python (the `mpich` wheel installs it there), else the one on PATH."""
    import shutil

    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    return shutil.which("mpiexec")


_HYDRA_DEATH = re.compile(r"PID (\d+) RUNNING AT (\S+)")
_HYDRA_CODE = re.compile(r"EXIT CODE: (\d+)")
_HYDRA_BANNER = (
    "=====",
    "=   BAD TERMINATION",
    "=   PID ",
    "=   EXIT CODE",
    "=   CLEANING UP",
    "=   YOU CAN IGNORE",
    "YOUR APPLICATION TERMINATED",
    "This typically refers to a problem",
    "Please see the FAQ page",
)


def launch(workers: int, args: list[str], out=None, err=None, on_death=None) -> int:
    """Run `nnctl <args>` on `workers` ranks under mpiexec; the exit code of the job.

    Ctrl-C / SIGTERM here are forwarded to mpiexec once each (mpiexec runs in its own session, so a
    terminal's Ctrl-C reaches it only through us: Hydra aborts hard on a second Ctrl-C). A rank that
    dies is reported by the rank number the ranks registered, with the run directory to resume, and
    `on_death(run_dir, error)` records it there: Hydra SIGKILLs every other rank at once, rank 0
    included, so no rank is left to write the run's final status."""
    import tempfile

    out, err = out or sys.stdout, err or sys.stderr
    mpiexec = find_mpiexec()
    if mpiexec is None:
        err.write(
            "error: --workers needs MPI: install it with pip install 'nnctl[mpi]' (mpi4py and the mpich wheel), "
            "or put your MPI's mpiexec on PATH.\n"
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="nnctl-launch-") as folder:
        env = {**os.environ, LAUNCH_DIR_VAR: folder, "PYTHONUNBUFFERED": "1"}
        threads = max(1, (os.cpu_count() or 1) // workers)
        for var in BLAS_VARS:  # N ranks each with all cores' BLAS threads would oversubscribe
            env.setdefault(var, str(threads))
        cmd = [mpiexec, "-n", str(workers), sys.executable, "-m", "nnctl", *args]
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, bufsize=0
        )
        deaths: list[tuple[int, str, int | None]] = []

        def forward(sig, frame) -> None:
            if proc.poll() is None:
                proc.send_signal(sig)

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
        pumps = [
            threading.Thread(target=_pump, args=(proc.stdout, out, err, deaths), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, err, err, deaths), daemon=True),
        ]
        try:
            for pump in pumps:
                pump.start()
            code = proc.wait()
            for pump in pumps:
                pump.join(timeout=5)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if deaths:
            error = _death_description(Path(folder), deaths, workers)
            run_file = Path(folder) / "run_dir"
            run_dir = run_file.read_text() if run_file.exists() else None
            message = f"error: {error}"
            if run_dir is not None:
                message += (
                    f" The run's last checkpoint is kept in {run_dir}; continue it with: "
                    f"nnctl train --resume {run_dir} --workers {workers}"
                )
                if on_death is not None:
                    on_death(run_dir, error)
            err.write(message + "\n")
            err.flush()
            return code if code not in (0, 130, 143) else 1
        return code


def _pump(stream, target, err, deaths) -> None:
    """Copy mpiexec's output line by line; Hydra's banner about a dead process is replaced by our message."""
    pending_pid: tuple[int, str] | None = None
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        death = _HYDRA_DEATH.search(line)
        if death:
            pending_pid = (int(death.group(1)), death.group(2))
            continue
        code = _HYDRA_CODE.search(line)
        if code and pending_pid is not None:
            deaths.append((*pending_pid, int(code.group(1))))
            pending_pid = None
            continue
        if line.lstrip().startswith(_HYDRA_BANNER) or line.startswith(_HYDRA_BANNER):
            continue
        target.write(line)
        target.flush()


def _death_description(folder: Path, deaths, workers: int) -> str:
    """'rank 1 (pid 4416 on node2) was killed by signal 9; every rank of the 2 was stopped.'"""
    ranks = {}
    for path in folder.glob("rank-*.pid"):
        pid, _, host = path.read_text().partition(" ")
        ranks[int(pid)] = (int(path.stem.split("-")[1]), host.strip())
    parts = []
    for pid, host, code in deaths:
        rank = ranks.get(pid, (None, host))[0]
        how = f"was killed by signal {code}" if code and code < 64 else f"exited with code {code}"
        who = f"rank {rank}" if rank is not None else "a rank"
        parts.append(f"{who} (pid {pid} on {host}) {how}")
    return "; ".join(parts) + f"; every rank of the {workers} was stopped."


def agree(comm, prepare):
    """Run `prepare()` on every rank and agree on the outcome before any rank goes on: if it failed
    anywhere, every rank raises (the failing rank's own error; the others an NnctlError naming that
    rank), marked `agreed` so the CLI exits with one message and one code instead of a hang."""
    from nnctl.errors import NnctlError

    result, failure = None, None
    try:
        result = prepare()
    except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank
        failure = exc
    if comm.size == 1:
        if failure is not None:
            raise failure
        return result
    report = None
    if failure is not None:
        report = (type(failure).__name__, str(failure), getattr(failure, "exit_code", 1))
    reports = comm.allgather(report)
    failed = [(rank, r) for rank, r in enumerate(reports) if r is not None]
    if not failed:
        return result
    if failure is not None:
        failure.agreed = True
        raise failure
    rank, (kind, message, code) = failed[0]
    error = NnctlError(f"rank {rank} ({comm.hosts[rank]}): {message}" if kind != "NnctlError" else message)
    error.exit_code, error.agreed = code, True
    raise error
