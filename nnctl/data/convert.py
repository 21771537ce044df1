"""`nnctl convert data.csv[.gz] -o DIR --target COLUMN`: a CSV bigger than memory into .npy shards.

The file is read once, a chunk of rows at a time (about CHUNK_FIELDS cells), each chunk checked as
the csv source checks a whole file (field count per line; every feature a finite number, else the
line and column), its features written into the current shard (SHARD_BYTES of features each) and
its targets kept per shard. Text labels get codes as they first appear and are renumbered in
sorted order at the end (the csv source's classes); numbers become classes or a regression target
by the csv source's rule. meta.json is written last: a directory without it is not a data set.
Memory stays bounded by a chunk and a shard, whatever the size of the file.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path

import numpy as np

from nnctl.data.csvfile import _to_numbers, check_header, describe_path
from nnctl.data.mapped import SHARDS_META
from nnctl.data.targets import TaskChoice
from nnctl.errors import DataError
from nnctl.registry import suggest

CHUNK_FIELDS = 400_000  # cells parsed at a time (~30 MB of Python strings)
SHARD_BYTES = 32 * 2**20  # features per shard file


def _save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class _Targets:
    """Targets of the rows seen so far: numbers, or text labels coded in order of appearance."""

    def __init__(self, name: str, task: TaskChoice, where_file: str):
        self.name, self.task, self.where_file = name, task, where_file
        self.kind: str | None = None  # "number" | "text"
        self.first_line: dict[str, int] = {}  # kind -> first line with it
        self.codes: dict[str, int] = {}
        self.values: set[float] = set()
        self.integral = True

    def encode(self, labels: list[str], lines: list[int]) -> np.ndarray:
        """This chunk's targets as stored until finish(): float values, or int codes of text labels."""
        text = [label.strip() for label in labels]
        for label, line in zip(text, lines, strict=True):
            if not label:
                raise DataError(
                    f"target '{self.name}' is empty at line {line} of {self.where_file}; every row needs a target value."
                )
        try:
            values = np.array(text, dtype=np.float64)
            kind = "number"
        except ValueError:
            kind = "text"
        self.kind = self.kind or kind
        if self.kind == "text" or kind == "text":
            return self._text(text, lines)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise DataError(
                f"target '{self.name}' is not a finite number at line {lines[bad[0]]} of {self.where_file}; "
                "remove the row or fill in the value."
            )
        self.first_line.setdefault("number", lines[0])
        if self.integral and not np.all(values == np.round(values)):
            self.integral = False
            if self.task == "classification":
                i = int(np.flatnonzero(values != np.round(values))[0])
                raise DataError(
                    f"target '{self.name}' holds the non-integer value {values[i]!r} at line {lines[i]} of "
                    f"{self.where_file}, so it cannot be a class label."
                )
        if self.integral and self.task != "regression":
            self.values.update(np.unique(values).tolist())
        return values

    def _text(self, text: list[str], lines: list[int]) -> np.ndarray:
        numeric = [_is_number(t) for t in text]
        words = [i for i, n in enumerate(numeric) if not n]
        if words:
            self.first_line.setdefault("text", lines[words[0]])
        if self.task == "regression":
            raise DataError(
                f"target '{self.name}' holds the text {text[words[0]]!r} at line {lines[words[0]]} of "
                f"{self.where_file}, but regression needs numbers. Fix the value, or use --task classification."
            )
        if self.kind == "number" or (self.task == "auto" and not all(not n for n in numeric)):
            if self.kind != "number":
                self.first_line.setdefault("number", lines[numeric.index(True)])
            raise DataError(
                f"target '{self.name}' mixes numbers (line {self.first_line.get('number')}) and text "
                f"(line {self.first_line.get('text')}) in {self.where_file}. Fix the values that are typos"
                + (
                    ", or use --task classification to treat every value as a text label."
                    if self.kind != "number"
                    else "."
                )
            )
        return np.array([self.codes.setdefault(t, len(self.codes)) for t in text], dtype=np.int64)

    def finish(self) -> tuple[str, list[str] | None, np.ndarray | None]:
        """(task, class names, lookup from stored value to class index) once every row is seen."""
        if self.kind == "text":
            names = sorted(self.codes)
            order = np.empty(len(names), dtype=np.int64)
            for rank, name in enumerate(names):
                order[self.codes[name]] = rank
            return "classification", names, order
        if self.task == "regression" or (self.task == "auto" and not self.integral):
            return "regression", None, None
        classes = np.array(sorted(self.values))
        return "classification", [str(int(c)) for c in classes], classes


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def convert_csv(
    path: str | Path,
    out: str | Path,
    target: str,
    task: TaskChoice = "auto",
    delimiter: str = ",",
    dtype: str = "float32",
) -> dict:
    """Write the CSV at `path` as .npy shards into the new or empty directory `out`; returns meta.json's content."""
    path, out = Path(path), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"output {describe_path(out)} exists and is not an empty directory; choose a new one.")
    shards: list[dict] = []
    created = not out.exists()
    try:
        return _convert(path, out, target, task, delimiter, dtype, shards)
    except BaseException:
        for entry in shards:  # a failed conversion leaves nothing behind (only what it wrote)
            for key in ("x", "y"):
                (out / entry[key]).unlink(missing_ok=True)
        for leftover in out.glob("*.npy.tmp"):
            leftover.unlink()
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def _convert(path: Path, out: Path, target: str, task, delimiter: str, dtype: str, shards: list[dict]) -> dict:
    where_file = describe_path(path)
    itemsize = np.dtype(dtype).itemsize
    opener = gzip.open if path.name.endswith(".gz") else open
    reader = None
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            header = next((row for row in reader if row), None)
            header = check_header(header, path)
            if target not in header:
                raise DataError(
                    f"target column '{target}' is not in CSV file {where_file}.{suggest(target, header)} "
                    f"Columns: {', '.join(header)}. Set --target to one of them."
                )
            t = header.index(target)
            names = [name for name in header if name != target]
            if not names:
                raise DataError(
                    f"CSV file {where_file} has only the target column '{target}'; it needs feature columns."
                )
            chunk_rows = max(1, CHUNK_FIELDS // len(header))
            shard_rows = max(chunk_rows, SHARD_BYTES // (len(names) * itemsize) // chunk_rows * chunk_rows)
            targets = _Targets(target, task, where_file)
            out.mkdir(parents=True, exist_ok=True)
            x_shard = np.empty((shard_rows, len(names)), dtype=dtype)
            y_parts: list[np.ndarray] = []
            filled = total = 0
            rows: list[list[str]] = []
            lines: list[int] = []

            def flush_chunk() -> None:
                nonlocal filled, total
                x = _to_numbers([row[:t] + row[t + 1 :] for row in rows], names, lines, where_file)
                x_shard[filled : filled + len(x)] = x
                y_parts.append(targets.encode([row[t] for row in rows], lines))
                filled += len(x)
                total += len(x)
                rows.clear()
                lines.clear()

            def flush_shard() -> None:
                nonlocal filled
                k = len(shards)
                entry = {"x": f"x-{k:05d}.npy", "y": f"y-{k:05d}.npy", "rows": filled}
                _save(out / entry["x"], x_shard[:filled])
                _save(out / entry["y"], np.concatenate(y_parts))
                y_parts.clear()
                shards.append(entry)
                filled = 0

            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"CSV file {where_file}: line {reader.line_num} has {len(row)} fields, but the header row has "
                        f"{len(header)}. Every row needs one value per column; check for a missing or extra "
                        f"'{delimiter}' on that line."
                    )
                rows.append(row)
                lines.append(reader.line_num)
                if len(rows) == chunk_rows:
                    flush_chunk()
                    if filled == shard_rows:
                        flush_shard()
            if rows:
                flush_chunk()
            if filled:
                flush_shard()
    except csv.Error as exc:
        near = f" near line {reader.line_num}" if reader is not None else ""
        raise DataError(f"cannot parse CSV file {where_file}{near}: {exc}.") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DataError(f"cannot read CSV file {where_file}: {reason}.") from None
    if not shards:
        raise DataError(f"CSV file {where_file} has a header but no data rows.")

    task_out, class_names, lookup = targets.finish()
    for entry in shards:  # targets in their final form: class indices, or (N, 1) values
        y = np.load(out / entry["y"], allow_pickle=False)
        if targets.kind == "text":
            y = lookup[y]
        elif task_out == "classification":
            y = np.searchsorted(lookup, y).astype(np.int64)
        else:
            y = y.reshape(-1, 1)
        _save(out / entry["y"], y)
    meta = {
        "format": "nnctl-shards",
        "version": 1,
        "source": str(path),
        "task": task_out,
        "target": target,
        "feature_names": names,
        "class_names": class_names,
        "dtype": str(np.dtype(dtype)),
        "rows": total,
        "shards": shards,
    }
    tmp = out / (SHARDS_META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / SHARDS_META)
    return meta
