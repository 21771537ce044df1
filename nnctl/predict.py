"""Apply a trained run to new inputs: `nnctl predict` and `nnctl.load_run(...).predict`.

A `Predictor` is built from a checkpoint alone (config, weights, normalization statistics, class
and feature names), so predicting never needs the training data. Inputs are *raw*: the values the
data had before nnctl touched them. For the TensorFlow Playground sources that is the point
(x1, x2), from which the configured features (sin_x1, x1_x2 ...) are computed; for every other
source it is the feature columns. The stored normalization is applied on top.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from nnctl import registry
from nnctl.data.csvfile import describe_path
from nnctl.data.tabular import RawTable, TablePreprocessor
from nnctl.data.transforms import Normalizer
from nnctl.errors import DataError, NnctlError

PLAYGROUND_INPUTS = ["x1", "x2"]


def playground_generator(config: BaseModel) -> Any | None:
    """The Playground source class of the config's data source, or None for other sources."""
    from nnctl.data.sources import _Playground

    component = registry.DATA_SOURCES.get(config.data.source.type).component
    return component if isinstance(component, type) and issubclass(component, _Playground) else None


@dataclass
class Predictor:
    config: BaseModel
    task: str
    feature_names: list[str]
    class_names: list[str] | None
    target_names: list[str] | None
    input_shape: tuple[int, ...]
    network: Any
    loss: Any
    normalizer: Normalizer
    target_normalizer: Normalizer
    playground: bool
    table: TablePreprocessor | None = None  # a table run: raw columns are typed, imputed and encoded first

    @classmethod
    def load(
        cls, run_dir: str | Path, checkpoint: str = "best", allow_plugins: bool = False, device: str = "cpu"
    ) -> Predictor:
        """The run's predictor; its network runs on `device` (outputs come back as NumPy either way)."""
        from nnctl.build import load_dataset
        from nnctl.device import resolve_device
        from nnctl.runs.reopen import open_run

        on = resolve_device(device)  # a missing GPU is refused before anything is read
        opened = open_run(run_dir, checkpoint, allow_plugins)
        config, meta = opened.config, opened.checkpoint.meta
        normalizer = Normalizer.from_state(config.data.normalize.method, opened.checkpoint.norm)
        target_normalizer = Normalizer.from_state(config.data.target_normalize, opened.checkpoint.target_norm)
        table = TablePreprocessor.from_state(opened.checkpoint.table) if opened.checkpoint.table else None
        if table is not None:
            input_shape = (len(table.feature_names),)
        elif normalizer.shift is not None and normalizer.shift.ndim >= 1:
            input_shape = tuple(int(d) for d in normalizer.shift.shape)  # per-feature statistics: one sample's shape
        else:  # statistics over all values: only the data know the sample shape
            input_shape = tuple(load_dataset(config).sample_shape)
        network = opened.network(input_shape, on)
        class_names = meta.get("class_names")
        if meta.get("task") == "classification" and not class_names:
            class_names = None
        loss = registry.LOSSES.create(config.loss)
        if meta.get("task") == "multilabel":
            loss.multilabel = True  # one sigmoid logit per label
        return cls(
            config=config,
            task=meta.get("task", "classification"),
            feature_names=list(meta.get("feature_names") or []),
            class_names=class_names,
            target_names=meta.get("target_names"),
            input_shape=input_shape,
            network=network,
            loss=loss,
            normalizer=normalizer,
            target_normalizer=target_normalizer,
            playground=playground_generator(config) is not None,
            table=table,
        )

    # --- what the input must look like ---

    @property
    def input_names(self) -> list[str] | None:
        """Names of the raw input columns (CSV header, dict keys), or None when samples are not flat rows."""
        if self.playground:
            return PLAYGROUND_INPUTS
        if self.table is not None:
            return self.table.input_names
        if len(self.input_shape) == 1 and len(self.feature_names) == self.input_shape[0]:
            return self.feature_names
        return None

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else int(self.network.output_shape[-1])

    def pick_columns(self, available: list[str], where: str) -> list[str]:
        """Which of the available columns to read, in order; DataError naming any missing one."""
        names = self.input_names
        if names is None:
            raise DataError(
                f"{where}: this run's samples have shape {self.input_shape}, not named columns; "
                "give an .npz file with an array x of shape (N, ...) instead."
            )
        if self.playground and not all(n in available for n in names):
            if all(n in available for n in self.feature_names):
                return self.feature_names  # the computed features themselves, by name
        missing = [n for n in names if n not in available]
        if missing:
            from nnctl.registry import suggest

            raise DataError(
                f"{where} lacks the column(s) {', '.join(missing)} that the run was trained on."
                f"{suggest(missing[0], [c for c in available if c not in names])} Needed: {', '.join(names)}; "
                f"found: {', '.join(available) or 'none'}."
            )
        return names

    def from_columns(self, columns: Mapping[str, Any], where: str) -> np.ndarray:
        """Raw inputs (N, F) from named columns; extra columns (such as the target) are ignored."""
        names = self.pick_columns(list(columns), where)
        if self.table is not None:  # raw cells of any kind (text, numbers, None/NaN for blanks)
            return self.table.encode(RawTable.from_columns({n: columns[n] for n in names}, where))
        x = np.stack([np.asarray(columns[n], dtype=np.float64).reshape(-1) for n in names], axis=1)
        return self.points_to_features(x) if names is PLAYGROUND_INPUTS else x

    def from_array(self, x: Any, where: str) -> np.ndarray:
        """Raw inputs from an array: (N, 2) points for Playground runs, else (N, *sample shape) or (N, F) flat."""
        x = np.asarray(x)
        if self.table is not None:  # columns in the order of input_names
            names = self.table.input_names
            if x.ndim != 2 or x.shape[1] != len(names):
                raise DataError(
                    f"{where}: expected {len(names)} raw columns ({', '.join(names)}) per row, got shape {x.shape}; "
                    "or give a dict of columns or a DataFrame."
                )
            return self.from_columns(dict(zip(names, x.T, strict=True)), where)
        if x.dtype.kind not in "biuf":
            raise DataError(f"{where}: inputs must be numbers, got an array of dtype {x.dtype}.")
        x = x.astype(np.float64, copy=False)
        if self.playground:
            if x.ndim != 2 or x.shape[1] != 2:
                raise DataError(
                    f"{where}: this run was trained on TensorFlow Playground points; give x of shape (N, 2) "
                    f"holding (x1, x2), got shape {x.shape}."
                )
            return self.points_to_features(x)
        size = int(np.prod(self.input_shape))
        if x.ndim >= 1 and x.shape[1:] == self.input_shape:
            return x
        if x.ndim == 2 and x.shape[1] == size:
            return x.reshape((len(x), *self.input_shape))
        raise DataError(
            f"{where}: expected inputs of shape (N, {', '.join(map(str, self.input_shape))})"
            + (f" or (N, {size})" if len(self.input_shape) > 1 else "")
            + f", got shape {x.shape}."
        )

    def points_to_features(self, points: np.ndarray) -> np.ndarray:
        from nnctl.data.features import compute_features

        return compute_features(points, self.feature_names)

    # --- predictions ---

    def outputs(self, raw: np.ndarray, where: str = "input", batch_size: int = 1024) -> np.ndarray:
        """Network outputs for raw inputs, normalized with the stored statistics, in batches."""
        if len(raw) and not np.all(np.isfinite(raw)):
            row = int(np.argwhere(~np.isfinite(raw.reshape(len(raw), -1)))[0][0])
            raise DataError(f"{where}: sample {row} holds NaN or Inf; inputs must be finite numbers.")
        dtype = np.dtype(self.config.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.ascontiguousarray(self.normalizer.transform(raw), dtype=dtype)
            out = self.network.predict(x, batch_size)
        _check_finite(x, out, where, dtype)
        return out

    def labels(self, out: np.ndarray) -> np.ndarray:
        """Class names (str) or indices for classification; values in original units (N, T) for regression."""
        pred = self.loss.predict(out)
        if self.task == "regression":
            return pred.astype(np.float64) * self.target_normalizer.scale + self.target_normalizer.shift
        return np.asarray(self.class_names)[pred] if self.class_names else pred

    def probabilities(self, out: np.ndarray) -> np.ndarray:
        if self.task not in ("classification", "multilabel") or not hasattr(self.loss, "probabilities"):
            raise NnctlError("probabilities exist for classification runs only; this run is a regression.")
        return self.loss.probabilities(out)


# --- files in and out ------------------------------------------------------------------------------


def read_inputs(predictor: Predictor, path: str | Path) -> np.ndarray:
    """Raw inputs from a .csv/.csv.gz (named columns) or an .npz (array x; by name with feature_names)."""
    from nnctl.data.csvfile import _to_numbers, read_csv
    from nnctl.data.npzfile import read_npz

    path = Path(path)
    where = describe_path(path)
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        header, rows, lines = read_csv(path)
        if not rows:
            raise DataError(f"CSV file {where} has a header but no data rows.")
        for row, line in zip(rows, lines, strict=True):
            if len(row) != len(header):
                raise DataError(
                    f"CSV file {where}: line {line} has {len(row)} fields, but the header row has {len(header)}."
                )
        needed = predictor.pick_columns(header, f"CSV file {where}")
        if predictor.table is not None:
            return predictor.table.encode(RawTable(header, np.array(rows, dtype=str), f"CSV file {where}", lines))
        present = {n: i for i, n in enumerate(header)}
        x = _to_numbers([[row[present[n]] for n in needed] for row in rows], needed, lines, where)  # (N, F)
        return predictor.points_to_features(x) if needed is PLAYGROUND_INPUTS else x
    if name.endswith(".npz"):
        arrays = read_npz(path)
        if "x" not in arrays:
            found = ", ".join(arrays) or "no arrays"
            raise DataError(
                f"{where} has no array 'x' (it holds: {found}). Save the inputs as np.savez(path, x=inputs)"
                + (", x of shape (N, 2) holding the points (x1, x2)." if predictor.playground else ".")
            )
        x = arrays["x"]
        if "feature_names" in arrays:
            names = [str(n) for n in np.asarray(arrays["feature_names"]).reshape(-1).tolist()]
            if x.ndim != 2 or x.shape[1] != len(names):
                raise DataError(f"{where}: x has shape {x.shape} but there are {len(names)} feature_names.")
            return predictor.from_columns(dict(zip(names, x.T, strict=True)), where)
        return predictor.from_array(x, f"array x in {where}")
    raise NnctlError(f"input {where}: expected a .csv, .csv.gz or .npz file.")


def prediction_columns(predictor: Predictor, proba: bool) -> list[str]:
    if predictor.task == "multilabel":  # one 0/1 column per label (and its probability)
        targets = predictor.target_names or []
        return [f"prediction_{t}" for t in targets] + ([f"proba_{t}" for t in targets] if proba else [])
    if predictor.task == "regression":
        targets = predictor.target_names or ["y"]
        return ["prediction"] if len(targets) == 1 else [f"prediction_{t}" for t in targets]
    names = predictor.class_names or [str(i) for i in range(predictor.num_classes)]
    return ["prediction"] + ([f"proba_{c}" for c in names] if proba else [])


def prediction_rows(predictor: Predictor, out: np.ndarray, proba: bool) -> list[list[Any]]:
    """One list per sample, matching prediction_columns(); numbers as their shortest exact text."""
    labels = predictor.labels(out)
    if predictor.task == "multilabel":
        rows = [[str(v) for v in row] for row in labels.tolist()]
        if proba:
            for row, p in zip(rows, predictor.probabilities(out), strict=True):
                row.extend(str(v) for v in p)
        return rows
    if predictor.task == "regression":
        return [[str(v) for v in row] for row in labels.reshape(len(labels), -1)]
    rows = [[str(v)] for v in labels.tolist()]
    if proba:
        for row, p in zip(rows, predictor.probabilities(out), strict=True):
            row.extend(str(v) for v in p)  # numpy scalars print the shortest text that reads back exactly
    return rows


def predictions_csv(columns: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


@dataclass
class PredictResult:
    samples: int
    columns: list[str]
    rows: list[list[Any]]
    classes: list[str] | None
    output: Path | None


def predict_file(
    run_dir: str | Path,
    input_path: str | Path,
    output: str | Path | None = None,
    proba: bool = False,
    checkpoint: str = "best",
    allow_plugins: bool = False,
    device: str = "cpu",
) -> PredictResult:
    """Predict every row of INPUT; write a CSV to `output` (atomically) when given."""
    from nnctl.runs.files import atomic_write

    predictor = Predictor.load(run_dir, checkpoint, allow_plugins, device)
    if proba and predictor.task not in ("classification", "multilabel"):
        raise NnctlError("--proba needs a classification run; this run is a regression.")
    raw = read_inputs(predictor, input_path)
    out = predictor.outputs(raw, describe_path(input_path))
    columns = prediction_columns(predictor, proba)
    rows = prediction_rows(predictor, out, proba)
    if output is not None:
        output = Path(output)
        if not output.parent.is_dir():
            raise NnctlError(f"cannot write {output}: the folder {output.parent} does not exist.")
        atomic_write(output, predictions_csv(columns, rows).encode("utf-8"))
    classes = None
    if predictor.task == "classification":
        classes = predictor.class_names or [str(i) for i in range(predictor.num_classes)]
    return PredictResult(len(rows), columns, rows, classes, output)


def _check_finite(x: np.ndarray, out: np.ndarray, where: str, dtype: np.dtype) -> None:
    """Inputs that overflow the engine's float type (1e308 in float32) give NaN outputs: say which."""
    bad_x = ~np.isfinite(x.reshape(len(x), -1))
    if bad_x.any():
        rows = sorted({int(i) for i in np.argwhere(bad_x)[:, 0]})
        raise DataError(
            f"{where}: sample {rows[0]} (row {rows[0] + 1} of the data"
            + (f"; {len(rows)} rows in all" if len(rows) > 1 else "")
            + f") has values that overflow {dtype} after normalization (its largest is about "
            f"{np.finfo(dtype).max:.1e}); inputs must be in the range the model was trained on."
        )
    bad_out = ~np.isfinite(out.reshape(len(out), -1)).all(axis=1)
    if bad_out.any():
        rows = np.flatnonzero(bad_out)
        raise DataError(
            f"{where}: the network's output for sample {rows[0]} (row {rows[0] + 1} of the data"
            + (f"; {len(rows)} rows in all" if len(rows) > 1 else "")
            + ") is not finite: its inputs overflow the network; use values in the range the model was trained on."
        )
