"""Look at an .npz archive before NumPy loads it: a hostile file must not make nnctl hang or allocate
what it declares.

`np.load` trusts each array's header: a 1 KB file can declare a (100000, 1000000) float64 array and
NumPy allocates 745 GiB before it notices the data is missing; a FIFO makes it wait forever. This
reads only the zip directory and the .npy headers.
"""

from __future__ import annotations

import math
import stat
import zipfile
from pathlib import Path

import numpy as np


def npz_problem(path: str | Path) -> str | None:
    """Why `path` must not be handed to np.load, or None. Missing files and non-zip files are left to
    np.load, whose own errors callers already report."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISDIR(mode):
        return "it is a folder, not a file"
    if not stat.S_ISREG(mode):
        return "it is not a regular file (a FIFO or a device?)"
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                problem = _entry_problem(info, path.stat().st_size) or _member_problem(archive, info)
                if problem:
                    return f"array '{info.filename[:-4]}': {problem}"
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError):
        return None  # not a zip (or a damaged one): np.load says so
    return None


def _entry_problem(info: zipfile.ZipInfo, archive_size: int) -> str | None:
    """The zip directory's sizes bound what reading the entry allocates; they must be possible."""
    if info.compress_size > archive_size:
        return f"the zip directory says {_size(info.compress_size)} but the file has {_size(archive_size)}"
    stored = info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size
    if stored or info.file_size > 1100 * max(info.compress_size, 1):  # deflate expands at most ~1032:1
        return (
            f"the zip directory declares {_size(info.file_size)} from {_size(info.compress_size)}, which is impossible"
        )
    return None


def _member_problem(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    with archive.open(info) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fh)
        except (ValueError, EOFError, SyntaxError, TypeError) as exc:
            return f"its header is not a NumPy array header ({exc})"
        header = fh.tell()
    if dtype.hasobject:
        return None  # refused by allow_pickle=False with its own message
    declared = math.prod(int(d) for d in shape) * dtype.itemsize
    stored = info.file_size - header  # the zip directory's (checked) uncompressed size
    if declared > stored:
        return (
            f"its header declares shape {tuple(shape)} of {dtype} ({_size(declared)}) but the file holds only "
            f"{_size(max(stored, 0))} of data; the file is damaged or hostile"
        )
    return None


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} bytes"
