"""Metrics, registered by name, computed in batches: reset() / update(y, pred, proba) / result().

A metric keeps only running sums (a K x K confusion matrix, a sum of log-probabilities, per-target
sums of residuals), so scoring a split never builds an intermediate array larger than one batch.
Predictions are class indices for classification and values in the data's original units for
regression (after undoing any target normalization); `proba` is the (batch, K) class probabilities
that metrics with `needs_proba` read. Batches may be device arrays (the metric's `device`): a metric
reduces them there with `self.xp` and keeps its running sums on the host (Python numbers, NumPy arrays).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from nnctl.device import CPU, Device, OnDevice
from nnctl.errors import ConfigError
from nnctl.registry import METRICS, Component, Params

NAN = float("nan")


class Metric(OnDevice, Component):
    """Base class; `column` names the value in metrics.csv and eval (`val_<column>`)."""

    task: ClassVar[Literal["classification", "regression", "multilabel"]]
    higher_is_better: ClassVar[bool] = True
    needs_proba: ClassVar[bool] = False
    num_classes: int | None = None  # set by prepare(), or inferred by __call__

    @property
    def column(self) -> str:
        return self.registered_name

    def prepare(self, task: str, num_classes: int | None) -> Metric:
        """Check that the metric fits the data (ConfigError otherwise) and remember the class count."""
        if task != self.task:
            raise ConfigError(f"metrics: '{self.column}' is a {self.task} metric, but the data are a {task} task.")
        self.num_classes = num_classes
        self.reset()
        return self

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None = None) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    # Names of the running sums (numbers or arrays) that shards of a split add up; a metric whose state
    # does not simply add (R^2's Chan update) overrides state() and merge() instead.
    sums: ClassVar[tuple[str, ...]] = ()

    @property
    def reducible(self) -> bool:
        """Whether shards of this metric can be merged (data-parallel evaluation)."""
        return bool(self.sums) or type(self).state is not Metric.state

    def state(self) -> tuple:
        """The running sums, as plain values (what a data-parallel evaluation sends to the other ranks)."""
        if not self.sums:
            raise NotImplementedError
        return tuple(np.copy(v) if isinstance(v, np.ndarray) else v for v in (getattr(self, n) for n in self.sums))

    def merge(self, state: tuple) -> None:
        """Add another accumulator's `state()` (another shard of the same split) to this one."""
        for name, value in zip(self.sums, state, strict=True):
            setattr(self, name, getattr(self, name) + value)

    def __call__(self, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None = None) -> float:
        """The metric over whole arrays (one batch); classes are inferred when prepare() was not called."""
        if self.task == "classification" and self.num_classes is None:
            labels = [self.xp.asarray(a).max() for a in (y, pred) if len(a)]
            width = proba.shape[1] if proba is not None else 0
            self.num_classes = max([int(m) + 1 for m in labels] + [width, 1])
        self.reset()
        self.update(y, pred, proba)
        return self.result()


# --- classification: everything from one streamed confusion matrix -----------------------------


class ConfusionMatrix:
    """Streaming K x K counts: rows are true classes, columns predicted classes (on the host; each batch
    is counted on `device`)."""

    def __init__(self, num_classes: int, device: Device = CPU):
        self.num_classes = num_classes
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.counts = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None = None) -> None:
        k, xp = self.num_classes, self.device.xp
        flat = xp.asarray(y, dtype=np.int64) * k + xp.asarray(pred, dtype=np.int64)
        self.counts += self.device.to_host(xp.bincount(flat, minlength=k * k)).reshape(k, k)

    def result(self) -> np.ndarray:
        return self.counts.copy()

    def state(self) -> tuple:
        return (self.counts.copy(),)

    def merge(self, state: tuple) -> None:
        self.counts += state[0]


def per_class(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix (0 where undefined:
    no predictions of the class for precision, no samples of it for recall)."""
    counts = np.asarray(counts, dtype=np.float64)
    tp = np.diag(counts)
    predicted, support = counts.sum(axis=0), counts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def present_classes(counts: np.ndarray) -> np.ndarray:
    """Classes that occur among the true labels or the predictions: the ones a macro average covers."""
    return (counts.sum(axis=0) + counts.sum(axis=1)) > 0


class _FromConfusion(Metric):
    task = "classification"

    def reset(self) -> None:
        self.matrix = ConfusionMatrix(self.num_classes or 0, self.device)

    def update(self, y, pred, proba=None):
        self.matrix.update(y, pred)

    def state(self):
        return self.matrix.state()

    def merge(self, state):
        self.matrix.merge(state)

    def result(self) -> float:
        counts = self.matrix.counts
        return self.value(counts) if counts.sum() else NAN

    def value(self, counts: np.ndarray) -> float:
        raise NotImplementedError


@METRICS.register("accuracy")
class Accuracy(_FromConfusion):
    """Fraction of samples whose predicted class is the true class."""

    def value(self, counts):
        return float(np.trace(counts) / counts.sum())


class _Macro(_FromConfusion):
    """Unweighted mean over the classes present in the true labels or the predictions (scikit-learn's
    default); eval reports the per-class values."""

    part: ClassVar[str]

    def value(self, counts):
        return float(np.mean(per_class(counts)[self.part][present_classes(counts)]))


@METRICS.register("precision")
class Precision(_Macro):
    """Macro-averaged precision: per class, correct predictions of it / all predictions of it."""

    part = "precision"


@METRICS.register("recall")
class Recall(_Macro):
    """Macro-averaged recall: per class, correct predictions of it / its samples."""

    part = "recall"


@METRICS.register("f1")
class F1(_Macro):
    """Macro-averaged F1: the mean over classes of 2 P R / (P + R)."""

    part = "f1"


@METRICS.register("top_k_accuracy")
class TopKAccuracy(Metric):
    """Fraction of samples whose true class is among the k most probable; column `top<k>_accuracy`."""

    task = "classification"
    needs_proba = True

    class Params(Params):
        k: int = Field(5, ge=1, description="How many of the most probable classes count as a hit.")

    @property
    def column(self) -> str:
        return f"top{self.k}_accuracy"

    def prepare(self, task, num_classes):
        super().prepare(task, num_classes)
        if num_classes is not None and self.k >= num_classes:
            raise ConfigError(
                f"metrics: top_k_accuracy with k={self.k} is always 1 for {num_classes} classes; choose k < {num_classes}."
            )
        return self

    sums = ("hits", "count")

    def reset(self):
        self.hits = self.count = 0

    def update(self, y, pred, proba=None):
        if proba is None:
            raise ValueError("top_k_accuracy needs class probabilities")
        xp = self.xp
        y = xp.asarray(y, dtype=np.int64)
        true_score = xp.take_along_axis(proba, y[:, None], axis=1)  # (B, 1)
        # A hit when fewer than k classes score strictly higher than the true one (ties count for it).
        above = xp.count_nonzero(proba > true_score, axis=1)
        self.hits += int(xp.count_nonzero(above < self.k))
        self.count += len(y)

    def result(self):
        return self.hits / self.count if self.count else NAN


@METRICS.register("log_loss")
class LogLoss(Metric):
    """Mean of -ln p(true class), probabilities clipped to [1e-15, 1] (cross-entropy of the predictions)."""

    task = "classification"
    higher_is_better = False
    needs_proba = True
    EPS: ClassVar[float] = 1e-15

    sums = ("total", "count")

    def reset(self):
        self.total, self.count = 0.0, 0

    def update(self, y, pred, proba=None):
        if proba is None:
            raise ValueError("log_loss needs class probabilities")
        xp = self.xp
        p = xp.take_along_axis(proba, xp.asarray(y, dtype=np.int64)[:, None], axis=1)[:, 0]
        self.total -= float(xp.sum(xp.log(xp.clip(p.astype(np.float64), self.EPS, 1.0))))
        self.count += len(p)

    def result(self):
        return self.total / self.count if self.count else NAN


# --- regression: running sums per target ------------------------------------------------------


class _Residuals(Metric):
    """Running count and sums of squared and absolute residuals over all target values."""

    task = "regression"
    higher_is_better = False

    sums = ("count", "squared", "absolute")

    def reset(self):
        self.count, self.squared, self.absolute = 0, 0.0, 0.0

    def update(self, y, pred, proba=None):
        xp = self.xp
        diff = xp.asarray(pred, dtype=np.float64) - xp.asarray(y, dtype=np.float64)
        flat = diff.reshape(-1)
        self.count += flat.size
        self.squared += float(flat @ flat)
        self.absolute += float(xp.sum(xp.abs(flat)))


@METRICS.register("mse")
class MeanSquaredError(_Residuals):
    """Mean squared error, in the target's units squared."""

    def result(self):
        return self.squared / self.count if self.count else NAN


@METRICS.register("rmse")
class RootMeanSquaredError(_Residuals):
    """Root of the mean squared error, in the target's units."""

    def result(self):
        return math.sqrt(self.squared / self.count) if self.count else NAN


@METRICS.register("mae")
class MeanAbsoluteError(_Residuals):
    """Mean absolute error, in the target's units."""

    def result(self):
        return self.absolute / self.count if self.count else NAN


@METRICS.register("r2")
class R2(Metric):
    """Coefficient of determination 1 - SS_res / SS_tot, averaged over targets (1 is perfect, 0 = predicting the mean).

    SS_tot is accumulated with Chan's pairwise update of (count, mean, sum of squared deviations)
    per target, which stays exact where sum(y^2) - n mean^2 would cancel catastrophically."""

    task = "regression"

    def reset(self):
        self.n = 0
        self.mean = self.m2 = self.ss_res = None

    def update(self, y, pred, proba=None):
        if len(y) == 0:  # an empty shard
            return
        xp, host = self.xp, self.device.to_host
        y = xp.asarray(y, dtype=np.float64).reshape(len(y), -1)  # (B, T)
        pred = xp.asarray(pred, dtype=np.float64).reshape(len(y), -1)
        mean_b = y.mean(axis=0)
        m2_b, res = ((y - mean_b) ** 2).sum(axis=0), ((y - pred) ** 2).sum(axis=0)
        self._combine(len(y), host(mean_b), host(m2_b), host(res))  # (T,) sums, kept on the host

    def _combine(self, b, mean_b, m2_b, res) -> None:
        """Chan's pairwise update with a part of b samples (its mean, squared deviations, squared residuals)."""
        if b == 0:
            return
        if self.n == 0:
            self.mean, self.m2, self.ss_res = mean_b, m2_b, res
        else:
            total = self.n + b
            delta = mean_b - self.mean
            self.m2 = self.m2 + m2_b + delta**2 * (self.n * b / total)
            self.mean = self.mean + delta * (b / total)
            self.ss_res = self.ss_res + res
        self.n += b

    def state(self):
        return self.n, self.mean, self.m2, self.ss_res

    def merge(self, state):
        self._combine(*state)

    def result(self):
        if self.n < 2:
            return NAN
        ss_tot = self.m2
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(ss_tot > 0, 1 - self.ss_res / np.where(ss_tot > 0, ss_tot, 1), 0.0)
        return float(np.mean(r2))


# --- multilabel: y and predictions (N, T) of 0/1 ---------------------------------------------------


class _Labels(Metric):
    task = "multilabel"

    sums = ("hits", "count")

    def reset(self):
        self.count, self.hits = 0, 0

    def result(self):
        return self.hits / self.count if self.count else NAN


@METRICS.register("label_accuracy")
class LabelAccuracy(_Labels):
    """Fraction of (sample, label) pairs predicted right (1 - Hamming loss)."""

    def update(self, y, pred, proba=None):
        right = self.xp.asarray(y).astype(np.int64) == self.xp.asarray(pred)
        self.count += right.size
        self.hits += int(right.sum())


@METRICS.register("subset_accuracy")
class SubsetAccuracy(_Labels):
    """Fraction of samples with every label right (scikit-learn's accuracy_score on multilabel data)."""

    def update(self, y, pred, proba=None):
        right = self.xp.all(self.xp.asarray(y).astype(np.int64) == self.xp.asarray(pred), axis=1)
        self.count += len(right)
        self.hits += int(right.sum())


DEFAULT_METRICS = {
    "classification": ["accuracy"],
    "regression": ["mse", "mae", "r2"],
    "multilabel": ["label_accuracy", "subset_accuracy"],
}


def build_metrics(specs: list, task: str, num_classes: int | None, device: Device = CPU) -> dict[str, Metric]:
    """Metric objects keyed by column from config specs (or names); the task's defaults when empty."""
    specs = list(specs) or DEFAULT_METRICS[task]
    metrics: dict[str, Metric] = {}
    for spec in specs:
        metric = METRICS.create({"type": spec} if isinstance(spec, str) else spec).to(device)
        metrics[metric.column] = metric.prepare(task, num_classes)
    return metrics


def higher_is_better(column: str) -> bool | None:
    """Direction of a metrics.csv / summary column (`val_accuracy`, `train_loss`, `top3_accuracy` ...);
    None when the name is no known metric."""
    name = column
    for prefix in ("train_", "val_", "test_"):
        name = name.removeprefix(prefix)
    if name in ("loss", "penalty"):
        return False
    for entry in METRICS.entries():
        if entry.name == name:
            return entry.component.higher_is_better
    if name.startswith("top") and name.endswith("_accuracy") and name[3:-9].isdigit():
        return TopKAccuracy.higher_is_better
    return None
