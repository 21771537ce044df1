"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from nnctl.errors import NnctlError


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None:  # write() and fsync() errors (disk full, ulimit -f) name no file: name it
            exc.filename = str(path)
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def new_stamped_folder(parent: Path, prefix: str = "", what: str = "runs folder") -> Path:
    """A new, empty folder parent/<prefix><YYYYMMDD-HHMMSS>-<id>: created with mkdir and no exist_ok, so
    two runs (sweeps, cv folders) started in the same second never share one."""
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NnctlError(f"cannot create the {what} {parent}: {exc.strerror}.") from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        path = parent / f"{prefix}{stamp}-{secrets.token_hex(3)}"
        try:
            path.mkdir()  # no exist_ok: the folder is ours only if we created it
        except FileExistsError:
            continue
        return path
    raise NnctlError(f"could not create a unique folder under {parent}.")
