"""One writer per run directory: `run.lock`, held while a session trains into the directory.

Two `nnctl train --resume RUN` at once (or a resume while the first session still trains) would both
append epochs to metrics.csv and race on the checkpoints; the second is refused instead, with the
holder's PID. The lock is an advisory `flock` on `run.lock` (which records host and PID for the
message): the kernel drops it when its process dies, so a SIGKILLed run never leaves a stale lock.
The file is removed when the session ends. Where `fcntl` does not exist, the file is created with
O_EXCL instead and a lock whose PID is no longer alive on this host is taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from nnctl.errors import NnctlError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "run.lock"


def _holder_text(path: Path) -> str:
    try:
        holder = json.loads(path.read_text())
        return f"PID {holder['pid']} on {'this machine' if holder['host'] == socket.gethostname() else holder['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _busy(run_dir: Path, path: Path) -> NnctlError:
    return NnctlError(
        f"{run_dir} is in use by another nnctl session ({_holder_text(path)}); two sessions writing one run "
        f"would mix their epochs. Wait for it to end (if no nnctl process uses the run, remove {path})."
    )


class RunLock:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        me = json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode()
        try:
            self._fd = self._flock() if fcntl is not None else self._exclusive()
        except OSError as exc:
            raise NnctlError(f"cannot lock {self.run_dir}: {exc.strerror or exc}.") from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, me)
        return self

    def _flock(self) -> int:
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise _busy(self.run_dir, self.path) from None
            try:  # the file we locked must still be the one at the path (its holder may just have removed it)
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)
        raise NnctlError(f"cannot lock {self.run_dir}: {self.path} keeps changing.")

    def _exclusive(self) -> int:
        for _ in range(3):
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    holder = json.loads(self.path.read_text())
                    stale = holder["host"] == socket.gethostname() and not _alive(int(holder["pid"]))
                except (OSError, ValueError, KeyError, TypeError):
                    stale = False
                if not stale:
                    raise _busy(self.run_dir, self.path) from None
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
        raise _busy(self.run_dir, self.path)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # before unlocking: a waiter that then locks the old file sees it is gone
        os.close(self._fd)
        self._fd = None


def lost_holder(run_dir: Path) -> str | None:
    """'PID 4416 on vm' when run.lock names a process of this machine that no longer exists: its session
    ended without cleaning up (SIGKILL, out of memory, an MPI job that lost a rank: Hydra SIGKILLs rank 0
    too), so it cannot have written its final status. None when the holder lives, is elsewhere, or there is
    no lock file (a session that ended cleanly removes it)."""
    try:
        holder = json.loads((Path(run_dir) / LOCK_FILE).read_text())
        host, pid = holder["host"], int(holder["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname() or _alive(pid):
        return None
    return f"PID {pid} on {host}"


def as_seen_now(summary: dict, run_dir: Path) -> dict:
    """A summary that says `running` whose session is gone (lost_holder) reads as `failed`, with why and
    how to continue; every other summary as it is. Read only: the directory is left as it is."""
    lost = lost_holder(run_dir) if summary.get("status") == "running" else None
    if not lost:
        return summary
    error = (
        f"its training process ({lost}) is gone without a final status (killed: SIGKILL, out of memory, or a "
        f"lost MPI rank); continue it with: nnctl train --resume {run_dir}"
    )
    return {**summary, "status": "failed", "error": error}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[RunLock]:
    """Hold the run directory's lock for the duration of the block."""
    lock = RunLock(run_dir).acquire()
    try:
        yield lock
    finally:
        lock.release()
