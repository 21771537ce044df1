"""Data bigger than memory: .npy files (one, or a directory of shards) memory-mapped read-only and
read batch by batch.

`MappedArray` is the features of such a source: (N, ...) rows over one or more .npy files, each
mapped with `mmap` (the read-only equivalent of `np.load(mmap_mode="r")`, with the mapping kept so
its resident pages can be handed back). Rows are gathered per batch; after every RELEASE_BYTES read
the mapping's pages are released (`madvise(MADV_DONTNEED)`: they leave this process's resident set
and stay in the page cache, so reading them again costs no disk access), which keeps the memory of
a training far below the data's size.

`MappedRows` is one split of it as the trainer sees it: the split's row indices, normalized and cast
to the engine dtype when a batch is taken (`take`, slices), never as a whole.

A shard directory (written by `nnctl convert`) holds x-00000.npy, y-00000.npy, ... and meta.json:
{"format": "nnctl-shards", "version": 1, "task", "target", "feature_names", "class_names", "rows",
"shards": [{"x": ..., "y": ..., "rows": ...}, ...]}.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from nnctl.data.csvfile import describe_path
from nnctl.errors import DataError

RELEASE_BYTES = 64 * 2**20  # hand the mapped pages back when this much more of them is resident
# A page fault on a file mapping maps cached pages around it too (fault-around: 64 KB, or whole large
# folios on recent kernels), so what a gather of scattered rows makes resident is measured, from
# /proc/self/statm where there is one; elsewhere it is estimated at this much per row.
FAULT_AROUND = 64 * 2**10
PAGE = mmap.PAGESIZE


def resident_file_bytes() -> int | None:
    """This process's resident file-backed (and shared) memory, or None where /proc is missing."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[2]) * PAGE
    except (OSError, IndexError, ValueError):
        return None


CHUNK_BYTES = 16 * 2**20  # rows per chunk of a streaming pass
SHARDS_META = "meta.json"


def _map_npy(path: Path) -> tuple[np.ndarray, mmap.mmap | None, int]:
    """A read-only view of the array in a .npy file, its mapping (None for an empty file) and the data's offset."""
    where = describe_path(path)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            offset = fh.tell()
            if dtype.hasobject:
                raise DataError(f"{where} holds Python objects; nnctl maps numeric arrays only (never unpickles).")
            if fortran and len(shape) > 1:
                raise DataError(f"{where} is stored in Fortran order; save it with np.save(np.ascontiguousarray(x)).")
            count = int(np.prod(shape))
            if count == 0:
                return np.zeros(shape, dtype=dtype), None, offset
            mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except ValueError as exc:
        raise DataError(f"{where} is not a .npy file: {exc}.") from None
    except OSError as exc:
        raise DataError(f"cannot read {where}: {exc.strerror or exc}.") from None
    if offset + count * dtype.itemsize > len(mapping):
        raise DataError(f"{where} is truncated: its header promises {shape} of {dtype}.")
    array = np.frombuffer(mapping, dtype=dtype, count=count, offset=offset).reshape(shape)
    return array, mapping, offset


class MappedArray:
    """Rows of one or more memory-mapped .npy files (same dtype and sample shape) as one (N, ...) array."""

    def __init__(self, paths: list[Path]):
        self.paths = [Path(p) for p in paths]
        self.parts, self._maps, self._offsets = [], [], []
        self._files: list[int] | None = None  # descriptors for positioned reads, opened on first use
        for path in self.paths:
            array, mapping, offset = _map_npy(path)
            self._offsets.append(offset)
            if array.ndim < 1:
                raise DataError(f"{describe_path(path)} holds a scalar; features need an array (N, ...).")
            if self.parts and (array.dtype != self.parts[0].dtype or array.shape[1:] != self.parts[0].shape[1:]):
                raise DataError(
                    f"{describe_path(path)} holds {array.dtype} samples of shape {array.shape[1:]}, but "
                    f"{describe_path(self.paths[0])} holds {self.parts[0].dtype} of shape {self.parts[0].shape[1:]}."
                )
            self.parts.append(array)
            if mapping is not None:
                self._maps.append(mapping)
        if not self.parts:
            raise DataError("a mapped data source needs at least one .npy file.")
        if not np.issubdtype(self.parts[0].dtype, np.number) or self.parts[0].dtype.kind == "c":
            raise DataError(
                f"{describe_path(self.paths[0])} holds {self.parts[0].dtype}; features must be real numbers."
            )
        sizes = [len(p) for p in self.parts]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.shape = (int(self.starts[-1]), *self.parts[0].shape[1:])
        self.dtype = self.parts[0].dtype
        self.ndim = len(self.shape)
        self._read, self._baseline = 0, resident_file_bytes() or 0

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def rows(self, index: np.ndarray) -> np.ndarray:
        """The rows at `index` (any order, repeats allowed), copied into memory.

        Scattered rows (a shuffled batch) are read with positioned reads: touching one row through the
        mapping makes the pages around it resident too (fault-around; whole large folios on recent
        kernels: ~1 MB a row was measured here, 700 MB for one batch of 512). Dense, ascending index
        runs (the streaming passes) are read through the mapping, whose pages are released as they
        pile up."""
        index = np.asarray(index, dtype=np.int64)
        if len(index) == 0:
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)
        span = int(index[-1] - index[0]) + 1
        dense = span > 0 and len(index) >= span // 2 and bool(np.all(np.diff(index) > 0))
        if not dense and hasattr(os, "preadv"):
            return self._pread(index)
        if len(self.parts) == 1:
            out = self.parts[0].take(index, axis=0)
        else:
            out = np.empty((len(index), *self.shape[1:]), dtype=self.dtype)
            part = np.searchsorted(self.starts, index, side="right") - 1
            for p in np.unique(part):
                where = part == p
                out[where] = self.parts[p].take(index[where] - self.starts[p], axis=0)
        resident = resident_file_bytes()
        if resident is not None:
            self._read = resident - self._baseline
        else:
            self._read += len(index) * max(self.row_bytes, FAULT_AROUND)
        if self._read >= RELEASE_BYTES:
            self.release()
        return out

    def _pread(self, index: np.ndarray) -> np.ndarray:
        if self._files is None:
            self._files = [os.open(path, os.O_RDONLY) for path in self.paths]
        out = np.empty((len(index), *self.shape[1:]), dtype=self.dtype)
        size = self.row_bytes
        view = memoryview(out.reshape(-1).view(np.uint8))
        part = np.searchsorted(self.starts, index, side="right") - 1 if len(self.parts) > 1 else None
        for i, row in enumerate(index.tolist()):
            p = 0 if part is None else int(part[i])
            offset = self._offsets[p] + (row - int(self.starts[p])) * size
            got = os.preadv(self._files[p], [view[i * size : (i + 1) * size]], offset)
            if got != size:
                raise DataError(f"{describe_path(self.paths[p])}: could not read row {row} (the file changed?).")
        return out

    def __del__(self) -> None:
        for fd in self._files or []:
            try:
                os.close(fd)
            except OSError:
                pass

    def release(self) -> None:
        """Drop the mapped pages from this process's resident memory (the page cache keeps them)."""
        for mapping in self._maps:
            mapping.madvise(mmap.MADV_DONTNEED)
        self._read, self._baseline = 0, resident_file_bytes() or 0

    def chunks(self, index: np.ndarray | None = None, chunk_bytes: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
        """The rows at `index` (all rows in order when None), a bounded chunk at a time."""
        index = np.arange(len(self)) if index is None else np.asarray(index, dtype=np.int64)
        step = max(1, chunk_bytes // max(1, self.row_bytes))
        for start in range(0, len(index), step):
            yield self.rows(index[start : start + step])

    def load(self) -> np.ndarray:
        """Every row in memory, read a chunk at a time into one array (the mapped pages handed back as they
        pile up): float32 stays float32 (build normalizes it in float64, a chunk at a time, as the mapped
        path does per batch), any other type becomes float64 like the in-memory sources."""
        out = np.empty(self.shape, dtype=np.float32 if self.dtype == np.float32 else np.float64)
        done = 0
        for chunk in self.chunks():
            out[done : done + len(chunk)] = chunk
            done += len(chunk)
        return out

    def first_nonfinite(self, rows: slice = slice(None)) -> tuple[int, ...] | None:
        """(row, position...) of the first NaN/Inf value among `rows`, by a streaming pass; None when all are finite."""
        if self.dtype.kind in "iu":
            return None
        start, stop, _ = rows.indices(len(self))
        done = start
        for chunk in self.chunks(np.arange(start, stop)):
            bad = ~np.isfinite(chunk)
            if bad.any():
                where = tuple(int(i) for i in np.argwhere(bad)[0])
                return (done + where[0], *where[1:])
            done += len(chunk)
        return None

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.rows(np.array([key]))[0]
        if isinstance(key, slice):
            return self.rows(np.arange(len(self))[key])
        return self.rows(np.asarray(key))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.rows(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype, copy=False)


class MappedRows:
    """A split of a MappedArray as the trainer takes it: rows `indices`, normalized and cast per batch."""

    def __init__(self, source: MappedArray, indices: np.ndarray, normalizer, dtype):
        self.source, self.indices = source, np.asarray(indices, dtype=np.int64)
        self.normalizer, self.dtype = normalizer, np.dtype(dtype)
        self.shape = (len(self.indices), *source.shape[1:])
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return len(self.indices)

    def take(self, index, axis: int = 0) -> np.ndarray:
        if axis != 0:
            raise ValueError("MappedRows.take gathers rows (axis 0) only")
        raw = self.source.rows(self.indices[np.asarray(index, dtype=np.int64)])
        if self.normalizer.method == "none":
            return np.ascontiguousarray(raw, dtype=self.dtype)
        # In float64, as the in-memory path normalizes a source's float64 features, then the engine dtype.
        return np.ascontiguousarray(self.normalizer.transform(raw.astype(np.float64)), dtype=self.dtype)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.take(np.array([key]))[0]
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        return self.take(key)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.take(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype, copy=False)


def read_shards_meta(folder: Path) -> dict:
    """meta.json of a shard directory, checked; DataError saying what is wrong otherwise."""
    path = Path(folder) / SHARDS_META
    where = describe_path(folder)
    if not Path(folder).is_dir():
        raise DataError(
            f"shard directory {where} not found. Write one with: nnctl convert data.csv -o DIR --target COLUMN"
        )
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(
            f"{where} has no {SHARDS_META}; it is not a shard directory written by nnctl convert."
        ) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {describe_path(path)}: {exc}.") from None
    if meta.get("format") != "nnctl-shards" or not isinstance(meta.get("shards"), list) or not meta["shards"]:
        raise DataError(
            f"{describe_path(path)} does not describe nnctl shards (format nnctl-shards, a list of shards)."
        )
    return meta


def _names(count: int, given, what: str, where: str) -> list[str]:
    names = list(given) if given else [f"f{j}" for j in range(count)]
    if len(names) != count:
        raise DataError(f"{where} names {len(names)} {what}, but the data have {count}.")
    return [str(n) for n in names]


def load_npy(x_path: str | Path, y_path: str | Path, task="auto", mapped: bool = True):
    """A Dataset whose features are memory-mapped from an .npy file (or read whole when not `mapped`),
    targets (read into memory) from another."""
    from nnctl.data.dataset import Dataset
    from nnctl.data.targets import encode_target

    x = MappedArray([Path(x_path)])
    if not mapped:  # read whole: one array, no float32 copy besides it and no whole file of mapped pages
        x = x.load()
    try:
        raw = np.load(y_path, allow_pickle=False)
    except ValueError:
        raise DataError(f"{describe_path(y_path)} is not a numeric .npy file (it would need pickle).") from None
    except OSError as exc:
        raise DataError(f"cannot read {describe_path(y_path)}: {exc.strerror or exc}.") from None
    if len(raw) != len(x):
        raise DataError(f"{describe_path(x_path)} has {len(x)} rows but {describe_path(y_path)} {len(raw)} targets.")
    y, task_out, class_names = encode_target(raw, task, "y", lambda i: f"row {i} of {describe_path(y_path)}")
    features = _names(x.shape[1], None, "features", describe_path(x_path)) if x.ndim == 2 else []
    return Dataset(x=x, y=y, task=task_out, feature_names=features, class_names=class_names, target_names=["y"])


def load_shards(folder: str | Path):
    """The Dataset in a shard directory written by `nnctl convert` (features mapped, targets in memory)."""
    from nnctl.data.dataset import Dataset

    folder = Path(folder)
    meta = read_shards_meta(folder)
    x = MappedArray([folder / part["x"] for part in meta["shards"]])
    y = np.concatenate([np.load(folder / part["y"], allow_pickle=False) for part in meta["shards"]])
    if len(y) != len(x):
        raise DataError(f"{describe_path(folder)}: the shards hold {len(x)} feature rows but {len(y)} targets.")
    where = describe_path(folder / SHARDS_META)
    features = _names(x.shape[1], meta.get("feature_names"), "features", where) if x.ndim == 2 else []
    return Dataset(
        x=x,
        y=y,
        task=meta.get("task", "classification"),
        feature_names=features,
        class_names=meta.get("class_names"),
        target_names=[meta["target"]] if meta.get("target") else ["y"],
    )
