"""Read a CSV (or .csv.gz) file with a header row into a Dataset: one target column, numeric features."""

from __future__ import annotations

import csv
import gzip
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from nnctl.data.dataset import Dataset
from nnctl.data.tabular import RawTable, TableParams, TablePreprocessor, select_columns
from nnctl.data.targets import TableTask, encode_target, is_number
from nnctl.errors import DataError, keyed
from nnctl.registry import suggest


def describe_path(path: str | Path) -> str:
    """'data.csv' plus where a relative path was looked for, for messages."""
    path = Path(path)
    return f"'{path}'" if path.is_absolute() else f"'{path}' (resolved to {Path.cwd() / path})"


def read_csv(path: str | Path, delimiter: str = ",") -> tuple[list[str], list[list[str]], list[int]]:
    """(header, rows, each row's line number in the file, header usually line 1); blank lines are skipped."""
    path = Path(path)
    if path.exists() and not path.is_dir() and not path.is_file():  # a FIFO or a device would block or never end
        raise DataError(f"CSV path {describe_path(path)} is not a regular file (a FIFO or a device?).")
    opener = gzip.open if path.name.endswith(".gz") else open
    rows: list[list[str]] = []
    lines: list[int] = []
    reader = None
    try:
        # utf-8-sig drops the byte-order mark that spreadsheet programs put before the header.
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next((row for row in reader if row), None)  # blank lines before it are skipped too
            for row in reader:
                if row:
                    rows.append(row)
                    lines.append(reader.line_num)
    except csv.Error as exc:
        near = f" near line {reader.line_num}" if reader is not None else ""
        raise DataError(f"cannot parse CSV file {describe_path(path)}{near}: {exc}.") from None
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:  # zlib: a damaged .gz
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DataError(
            f"cannot read CSV file {describe_path(path)}: {reason}. Check the path (relative paths are "
            "resolved against the current working directory) and that the file is UTF-8 text or gzip."
        ) from None
    return check_header(header, path), rows, lines


def check_header(header: list[str] | None, path: str | Path) -> list[str]:
    """The header row's column names, stripped; DataError for a missing, blank or repeated one."""
    if not header:
        raise DataError(f"CSV file {describe_path(path)} is empty; it needs a header row naming the columns.")
    header = [name.strip() for name in header]
    for i, name in enumerate(header):
        if not name:
            raise DataError(f"CSV file {describe_path(path)}: column {i + 1} of the header row has no name.")
        if name in header[:i]:
            raise DataError(f"CSV file {describe_path(path)}: the header row names column '{name}' twice.")
    return header


def load_csv(
    path: str | Path,
    target: str | list[str],
    task: TableTask = "auto",
    delimiter: str = ",",
    class_names: list[str] | None = None,
    table: TableParams | None = None,
) -> Dataset:
    """The Dataset in a CSV file: column `target` is y, every other column a numeric feature.

    With column declarations (`table`), several targets, or cells that are not all numbers, the
    features are kept as text (a RawTable) to be typed, imputed and encoded after the split."""
    header, rows, lines = read_csv(path, delimiter)
    where_file = describe_path(path)
    targets = [target] if isinstance(target, str) else list(target)
    for name in targets:
        _check_target(name, header, where_file)
    if not rows:
        raise DataError(f"CSV file {where_file} has a header but no data rows.")
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(header):
            raise DataError(
                f"CSV file {where_file}: line {line} has {len(row)} fields, but the header row has "
                f"{len(header)}. Every row needs one value per column; check for a missing or extra "
                f"'{delimiter}' on that line."
            )
    table = table or TableParams()
    if len(targets) == 1 and task != "multilabel" and not table.declares_table():
        try:
            return _load_numeric(header, rows, lines, where_file, targets[0], task, class_names)
        except NotNumbers:
            pass  # not all numbers: read it as a table, which infers the column types (or explains the cell)
    return _load_table(header, rows, lines, where_file, targets, task, class_names, table)


def _check_target(target: str, header: list[str], where_file: str) -> None:
    if target not in header:
        hint = suggest(target, header)
        if len(header) == 1 and any(d in header[0] for d in ";\t|"):
            hint += f" The header has a single column '{header[0]}'; set delimiter to the file's separator."
        elif all(is_number(name) for name in header):
            hint += " The header row holds only numbers: the file needs a first row naming the columns."
        raise keyed(
            DataError(
                f"target column '{target}' is not in CSV file {where_file}.{hint} "
                f"Columns: {', '.join(header)}. Set target to one of them."
            ),
            *TARGET,
        )


def _load_numeric(header, rows, lines, where_file, target, task, class_names) -> Dataset:
    feature_names = [name for name in header if name != target]
    if not feature_names:
        raise DataError(f"CSV file {where_file} has only the target column '{target}'; it needs feature columns.")

    t = header.index(target)
    x = _to_numbers([row[:t] + row[t + 1 :] for row in rows], feature_names, lines, where_file)

    def where(i: int) -> str:
        return f"line {lines[i]} of {where_file}"

    labels = np.array([row[t] for row in rows], dtype=str)
    with target_errors():
        y, task_out, names = encode_target(labels, task, target, where, class_names)
    return Dataset(
        x=x,
        y=y,
        task=task_out,  # type: ignore[arg-type]
        feature_names=feature_names,
        class_names=names,
        target_names=[target],
    )


def _load_table(header, rows, lines, where_file, targets, task, class_names, params: TableParams) -> Dataset:
    features = select_columns(header, targets, params, where_file)
    cells = np.array(rows, dtype=str)  # (N, columns)
    pos = {name: j for j, name in enumerate(header)}

    def where(i: int) -> str:
        return f"line {lines[i]} of {where_file}"

    raw_y = cells[:, [pos[t] for t in targets]]
    with target_errors():
        y, task_out, names = encode_target(
            raw_y[:, 0] if len(targets) == 1 else raw_y, task, ", ".join(targets), where, class_names
        )
    weight = None
    if params.sample_weight is not None:
        column = [[row[pos[params.sample_weight]]] for row in rows]
        try:
            weight = _to_numbers(column, [params.sample_weight], lines, where_file)[:, 0]  # blank, text, NaN: an error
        except DataError as exc:
            raise keyed(exc, "data", "source", "sample_weight") from None
        negative = np.flatnonzero(weight < 0)
        if negative.size:
            i = int(negative[0])
            raise keyed(
                DataError(
                    f"CSV file {where_file}: line {lines[i]}, column '{params.sample_weight}' (sample_weight) is "
                    f"{weight[i]:g}; weights must be >= 0."
                ),
                "data",
                "source",
                "sample_weight",
            )
    table = RawTable(
        features, cells[:, [pos[f] for f in features]], f"CSV file {where_file}", lines, dict(params.columns)
    )
    # Split-independent checks now, on every row (a blank cell with no impute, text in a numeric column):
    # the error names the row before anything is built. The statistics are fitted on the training rows later.
    TablePreprocessor(table.specs).fit(table).encode(table, warn=False)
    return Dataset(
        x=np.zeros((len(rows), 0)),
        y=y,
        task=task_out,  # type: ignore[arg-type]
        feature_names=[],
        class_names=names,
        target_names=targets,
        table=table,
        sample_weight=weight,
    )


TARGET = ("data", "source", "target")  # the config key a target error is about


@contextmanager
def target_errors():
    """A bad target value (blank, text among numbers ...) is an error about data.source.target, for its line."""
    try:
        yield
    except DataError as exc:
        raise keyed(exc, *TARGET) from None


class NotNumbers(DataError):
    """A feature cell is blank, text or not finite (the message names it)."""


def _to_numbers(text: list[list[str]], names: list[str], lines: list[int], where_file: str) -> np.ndarray:
    """Text rows (N, F) -> float64, or a DataError naming the first bad cell's line, column and text."""
    try:
        # Straight from Python str to float64: about twice as fast as going through a numpy str array.
        x = np.array(text, dtype=np.float64)
    except ValueError:
        # Slow path, only on failure: find the first cell Python's float() rejects, row by row.
        for i, row in enumerate(text):
            for j, cell in enumerate(row):
                if not is_number(cell):
                    what = "is empty" if not cell.strip() else f"holds {cell!r}, which is not a number"
                    raise NotNumbers(
                        f"CSV file {where_file}: line {lines[i]}, column '{names[j]}' {what}. Features must "
                        "be numbers; fix or drop the row, or encode text columns as numbers."
                    ) from None
        raise
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        i, j = bad[0]
        raise NotNumbers(
            f"CSV file {where_file}: line {lines[i]}, column '{names[j]}' holds {text[i][j]!r}, which is not "
            "a finite number. Missing values are not supported; fill them in (impute) or drop the row."
        )
    return x
