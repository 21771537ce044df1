"""A small Python API for notebooks and scripts: `nnctl.load_run(path)`.

    run = nnctl.load_run("runs/iris/20260101-120000-ab12cd")
    run.predict([[5.1, 3.5, 1.4, 0.2]])      # array(['setosa'])
    run.predict_proba(x)                      # (N, K) class probabilities
    run.evaluate("test")["metrics"]           # what `nnctl eval --json` reports
    run.metrics                               # metrics.csv: list of dicts, or a pandas DataFrame

Inputs are raw, as for `nnctl predict`: feature columns (Playground runs: the points x1, x2), as an
array (N, F), or by name as a dict of columns or a pandas DataFrame. Normalization and Playground
features are applied from the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nnctl.errors import NnctlError
from nnctl.predict import Predictor
from nnctl.runs.rundir import RunDir

SPLITS = ("train", "val", "test")


def load_run(path: str | Path, checkpoint: str = "best", allow_plugins: bool = False) -> Run:
    """Open a run directory written by `nnctl train`; `checkpoint` is best (falls back to last) or last."""
    RunDir.open(path).find_checkpoint(checkpoint)  # fail now, with the message, if there is nothing to load
    return Run(Path(path), checkpoint, allow_plugins)


class Run:
    """One trained run. The model is loaded on first use; the training data only for evaluate() and data()."""

    def __init__(self, path: Path, checkpoint: str = "best", allow_plugins: bool = False):
        self.path = Path(path)
        self.checkpoint = checkpoint
        self.allow_plugins = allow_plugins
        self._config = None
        self._predictor: Predictor | None = None
        self._experiment = None
        self._opened = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.summary.get('status')!r}, checkpoint={self.checkpoint!r})"

    # --- what the run directory says ---

    @property
    def config(self):
        """The resolved ExperimentConfig (a frozen pydantic model; `.model_dump()` for a dict)."""
        if self._config is None:
            from nnctl.runs.reopen import read_run_config

            self._config = read_run_config(RunDir.open(self.path), self.allow_plugins)
        return self._config

    @property
    def summary(self) -> dict:
        return RunDir(self.path).read_summary()

    @property
    def metrics(self) -> Any:
        """metrics.csv, one row per epoch: a pandas DataFrame when pandas is installed, else a list of
        dicts with numbers (int for epoch and step, float otherwise; None for an empty cell)."""
        try:
            import pandas as pd
        except ImportError:
            return [{k: _number(k, v) for k, v in row.items()} for row in RunDir(self.path).read_metrics()]
        rows = RunDir(self.path).read_metrics()
        return pd.DataFrame(rows).apply(pd.to_numeric, errors="coerce") if rows else pd.DataFrame()

    # --- the model ---

    @property
    def predictor(self) -> Predictor:
        if self._predictor is None:
            self._predictor = Predictor.load(self.path, self.checkpoint, self.allow_plugins)
        return self._predictor

    @property
    def task(self) -> str:
        return self.predictor.task

    @property
    def classes(self) -> list[str] | None:
        return self.predictor.class_names

    @property
    def input_names(self) -> list[str] | None:
        """The raw input columns predict() reads by name (None for image or sequence runs)."""
        return self.predictor.input_names

    def _raw(self, x: Any) -> np.ndarray:
        if isinstance(x, Mapping) or hasattr(x, "columns"):  # a dict of columns or a pandas DataFrame
            columns = x if isinstance(x, Mapping) else {str(c): x[c].to_numpy() for c in x.columns}
            return self.predictor.from_columns(columns, "input")
        return self.predictor.from_array(x, "input")

    def predict(self, x: Any) -> np.ndarray:
        """Class names (or indices when the data had none) for classification, shape (N,); regression
        values in the data's units, (N,) for one target and (N, T) for several."""
        p = self.predictor
        labels = p.labels(p.outputs(self._raw(x)))
        if p.task == "regression" and labels.ndim == 2 and labels.shape[1] == 1:
            return labels[:, 0]
        return labels

    def predict_proba(self, x: Any) -> np.ndarray:
        """(N, K) class probabilities, columns in the order of `classes`."""
        p = self.predictor
        return p.probabilities(p.outputs(self._raw(x)))

    # --- scoring on the run's own data ---

    @property
    def experiment(self):
        """The rebuilt experiment (data, splits, network with the checkpoint's weights)."""
        if self._experiment is None:
            from nnctl.runs.reopen import open_run

            self._experiment = open_run(self.path, self.checkpoint, self.allow_plugins).experiment()
        return self._experiment

    def evaluate(self, split: str = "test") -> dict:
        """As `nnctl eval --json`: {"split", "samples", "metrics", and for classification "classes",
        "confusion_matrix", "per_class", "macro_avg"}."""
        from nnctl.train.evaluate import score_split

        _check_split(split)
        return score_split(self.experiment, split)

    def data(self, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """(raw inputs, targets) of a split, in the split's order: what predict() takes and what it
        should answer (class names, or regression values (N, T))."""
        _check_split(split)
        experiment = self.experiment
        raw, y = experiment.raw_inputs(split), experiment.splits[split].y_true
        if experiment.task == "classification" and experiment.class_names:
            y = np.asarray(experiment.class_names)[y]
        return raw, y


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise NnctlError(f"split must be train, val or test, got '{split}'.")


def _number(key: str, text: str) -> Any:
    if text == "" or text is None:
        return None
    try:
        return int(text) if key in ("epoch", "step") else float(text)
    except ValueError:
        return text
