"""Metrics: functions of (true targets, predictions) over a whole split, registered by name.

Predictions are class indices for classification and values in the data's original units for
regression (after undoing any target normalization).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from nnctl.registry import METRICS


class Metric:
    task: Literal["classification", "regression"]
    higher_is_better = True

    def __call__(self, y: np.ndarray, pred: np.ndarray) -> float:
        raise NotImplementedError


@METRICS.register("accuracy")
class Accuracy(Metric):
    """Fraction of samples whose predicted class is the true class."""

    task = "classification"

    def __call__(self, y, pred):
        return float(np.mean(pred == y)) if len(y) else float("nan")


@METRICS.register("mse")
class MeanSquaredError(Metric):
    """Mean squared error, in the target's units squared."""

    task = "regression"
    higher_is_better = False

    def __call__(self, y, pred):
        return float(np.mean((pred - y) ** 2)) if len(y) else float("nan")


@METRICS.register("mae")
class MeanAbsoluteError(Metric):
    """Mean absolute error, in the target's units."""

    task = "regression"
    higher_is_better = False

    def __call__(self, y, pred):
        return float(np.mean(np.abs(pred - y))) if len(y) else float("nan")


@METRICS.register("r2")
class R2(Metric):
    """Coefficient of determination 1 - SS_res / SS_tot, averaged over targets (1 is perfect, 0 = predicting the mean)."""

    task = "regression"

    def __call__(self, y, pred):
        if len(y) < 2:
            return float("nan")
        ss_res = np.sum((y - pred) ** 2, axis=0)
        ss_tot = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), 0.0)
        return float(np.mean(r2))


DEFAULT_METRICS = {"classification": ["accuracy"], "regression": ["mse", "mae", "r2"]}
