"""Losses: forward(out, y) -> mean loss over the batch; backward() -> d loss / d out.

Classification losses take raw scores (logits) and fuse the output non-linearity, which is both
numerically stable and cheaper; `probabilities` turns network outputs into what users read.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, PositiveFloat, model_serializer

from nnctl.device import OnDevice
from nnctl.errors import ConfigError
from nnctl.registry import LOSSES, Component, Params


def with_sample_weight(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Targets with their per-row weights as one more column, as a loss with `sample_weighted` reads them:
    class labels (N,) -> (N, 2) [label, weight]; regression targets (N, T) -> (N, T + 1).

    The trainer batches targets by row, so the weights travel with them without a second array."""
    y2 = y[:, None] if y.ndim == 1 else y
    dtype = y.dtype if np.issubdtype(y.dtype, np.floating) else np.float64
    return np.concatenate([y2.astype(dtype), w.astype(dtype)[:, None]], axis=1)


def weigh_loss(loss, dataset, train: np.ndarray) -> None:
    """Tell the loss about the data's sample weights and fit its class weights on the training labels."""
    if dataset.sample_weight is not None:
        if not getattr(loss, "takes_sample_weight", False):
            raise ConfigError(f"loss '{loss.name}' does not take sample weights; remove data.source.sample_weight.")
        loss.sample_weighted = True
    if getattr(loss, "class_weight", None) is not None:
        if dataset.task == "multilabel":
            raise ConfigError(
                "loss.class_weight: weights per class do not apply to multilabel targets; use sample_weight."
            )
        loss.fit_class_weight(dataset.y[train], dataset.class_names, dataset.num_classes)


class Loss(OnDevice, Component):
    task: Literal["classification", "regression"] = "regression"
    _cache: object = None
    sample_weighted = False  # set by build when the data have a sample_weight column (see with_sample_weight)

    def _split_weight(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(targets, per-row weights or None) from what forward() received."""
        if not self.sample_weighted:
            return y, None
        if self.task == "classification" and not getattr(self, "multilabel", False):
            return y[:, 0].astype(np.int64), y[:, -1]
        return y[:, :-1], y[:, -1]

    def _normalized(self, w: np.ndarray, dtype) -> np.ndarray:
        """w / sum(w), so the weighted loss is sum(w l) / sum(w) (PyTorch's weighted mean); all zero: zeros."""
        total = float(w.sum())
        return (w / total if total > 0 else self.xp.zeros_like(w)).astype(dtype, copy=False)

    @property
    def name(self) -> str:
        return getattr(self, "registered_name", type(self).__name__.lower())

    @property
    def weighted(self) -> bool:
        return self.sample_weighted

    def batch_weight(self, y: np.ndarray) -> float:
        """sum(w) of a batch: what forward() divides the weighted sum of the losses by (its length unweighted).
        Data-parallel ranks weigh their gradients by their slice's share of the global batch's weight.
        On the host: it reads the trainer's NumPy targets before the batch moves to the device."""
        labels, w = self._split_weight(y)
        w = np.ones(len(labels)) if w is None else w.astype(np.float64)
        class_weights = getattr(self, "weights", None)
        if class_weights is not None:
            w = w * class_weights[labels]
        return float(np.sum(w))

    def forward(self, out: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def _take_cache(self) -> object:
        cache, self._cache = self._cache, None
        if cache is None:
            raise self._no_forward()
        return cache

    def _no_forward(self) -> RuntimeError:
        return RuntimeError(f"{self.name}: backward() called without forward() before it")

    def check(self, output_shape: tuple[int, ...], task: str, num_classes: int | None, targets: int) -> None:
        """Raise a ConfigError when the network output or the data does not fit this loss."""
        if task != self.task:
            if self.task == "regression":
                raise ConfigError(
                    f"loss '{self.name}' is a regression loss, but the data are class labels ({num_classes} classes). "
                    "Use loss: cross_entropy (or binary_cross_entropy for two classes) with one output per class."
                )
            raise ConfigError(
                f"loss '{self.name}' needs class labels, but the data's targets are real numbers (regression). "
                "Use loss: mse, mae or huber, or set the data source's task to classification if the values are labels."
            )
        if task == "regression" and output_shape != (targets,):
            raise ConfigError(
                f"the network outputs shape {output_shape} but the data have {targets} target value(s) per sample; "
                f"make the last layer `dense` with units: {targets}."
            )

    def predict(self, out: np.ndarray) -> np.ndarray:
        """Class indices (classification) or values (regression) from network outputs."""
        return out


class _Regression(Loss):
    takes_sample_weight = True

    def forward(self, out, y):
        if not self.sample_weighted:  # without _split_weight's call and tuple: ~0.1 us of a tiny network's step
            diff = out - y
            self._cache = diff
            return self._value(diff)
        y, w = self._split_weight(y)
        diff = out - y
        # Weighted: L = sum_i w_i mean_t(e_it) / sum_i w_i, with e the loss of each value.
        share = self._normalized(w, diff.dtype)[:, None] / diff.dtype.type(diff[0].size)  # (N, 1)
        self._cache = (diff, share)
        return float(self.xp.sum(self._elements(diff) * share))

    def backward(self):
        cache, self._cache = self._cache, None  # _take_cache inline (a call costs ~70 ns)
        if cache is None:
            raise self._no_forward()
        if isinstance(cache, tuple):
            diff, share = cache
            return self._element_grad(diff) * share
        return self._backward(cache)


@LOSSES.register("mse")
class MSE(_Regression):
    """L = mean((out - y)^2) over samples and outputs."""

    _scale_key: tuple | None = None  # (size, dtype) of the batch that `_scale` = 2 / size was made for

    def _value(self, diff):
        flat = diff.ravel()  # a view of the fresh difference; ravel costs ~45 ns less than reshape(-1)
        # One dot product instead of square + mean; the array's own dot skips `@`'s ufunc overhead (~0.3 us).
        return float(flat.dot(flat)) / flat.size

    def _backward(self, diff):
        # 2 / size as a 0-d array kept while the batch size stays: a NumPy scalar operand (and making
        # it) costs a small batch's step ~0.3 us more.
        key = (diff.size, diff.dtype)
        if key != self._scale_key:
            self._scale_key, self._scale = key, self.xp.asarray(2.0 / diff.size, dtype=diff.dtype)
        return diff * self._scale

    def _elements(self, diff):
        return diff * diff

    def _element_grad(self, diff):
        return 2 * diff


@LOSSES.register("mae")
class MAE(_Regression):
    """L = mean(|out - y|); robust to outliers, constant-size gradients."""

    def _value(self, diff):
        return float(self.xp.mean(self.xp.abs(diff)))

    def _backward(self, diff):
        return self.xp.sign(diff) * diff.dtype.type(1.0 / diff.size)

    def _elements(self, diff):
        return self.xp.abs(diff)

    def _element_grad(self, diff):
        return self.xp.sign(diff)


@LOSSES.register("huber")
class Huber(_Regression):
    """L = mean(0.5 d^2 if |d| <= delta else delta (|d| - 0.5 delta)), d = out - y: MSE near 0, MAE far away."""

    class Params(Params):
        delta: float = Field(1.0, gt=0, description="Where the quadratic part turns linear.")

    def _value(self, diff):
        return float(self.xp.mean(self._elements(diff)))

    def _backward(self, diff):
        return self.xp.clip(diff, -self.delta, self.delta) * diff.dtype.type(1.0 / diff.size)

    def _elements(self, diff):
        a = self.xp.abs(diff)
        return self.xp.where(a <= self.delta, 0.5 * diff * diff, self.delta * (a - 0.5 * self.delta))

    def _element_grad(self, diff):
        return self.xp.clip(diff, -self.delta, self.delta)


ClassWeight = Literal["balanced"] | dict[str, PositiveFloat] | None


class _Classification(Loss):
    """Shared by the classification losses: optional class weights, resolved against the training labels."""

    task = "classification"
    takes_sample_weight = True

    class Params(Params):
        class_weight: ClassWeight = Field(
            None,
            description="Weight of each class in the loss: balanced (n / (K * n_k), from the training split) or "
            "{class name: weight}; unlisted classes weigh 1. The loss is sum(w l) / sum(w); metrics are unweighted.",
        )

        @model_serializer(mode="wrap")
        def _omit_unset(self, handler):
            # An unweighted loss resolves (and checkpoints) exactly as before class_weight existed.
            out = handler(self)
            if self.class_weight is None:
                out.pop("class_weight", None)
            return out

    def setup(self) -> None:
        super().setup()
        self.weights: np.ndarray | None = None  # (K,) float64 once resolved by fit_class_weight

    def fit_class_weight(self, y_train: np.ndarray, class_names: list[str] | None, num_classes: int) -> None:
        """Turn `class_weight` into one weight per class index (balanced: from the training labels)."""
        if self.class_weight is None:
            return
        if self.class_weight == "balanced":
            counts = np.bincount(y_train, minlength=num_classes).astype(np.float64)
            self.weights = len(y_train) / (num_classes * np.maximum(counts, 1.0))
            return
        names = class_names or [str(k) for k in range(num_classes)]
        unknown = [c for c in self.class_weight if c not in names]
        if unknown:
            raise ConfigError(
                f"loss.class_weight.{unknown[0]}: there is no class '{unknown[0]}'; the classes are {', '.join(names)}."
            )
        self.weights = np.array([float(self.class_weight.get(c, 1.0)) for c in names])

    @property
    def weighted(self) -> bool:
        return self.weights is not None or self.sample_weighted

    def _row_weights(self, y: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
        """(labels, w_i / sum(w)) with w_i = class weight of y_i times the row's sample weight."""
        labels, w = self._split_weight(y)
        xp = self.xp
        w = xp.ones(len(labels)) if w is None else w.astype(np.float64)
        if self.weights is not None:  # K host values: moving them costs nothing next to the batch
            w = w * self.device.to_device(self.weights)[labels]
        return labels, self._normalized(w, dtype)


@LOSSES.register("binary_cross_entropy")
class BinaryCrossEntropy(_Classification):
    """L = mean(softplus(z) - y z) for one logit z per sample and y in {0, 1}; sigmoid fused in (stable).
    Multilabel data (T 0/1 targets): one logit per label, the mean over samples and labels."""

    multilabel = False  # set by check() for multilabel data (and by the Predictor from the run's task)

    def check(self, output_shape, task, num_classes, targets):
        if task == "multilabel":
            if output_shape != (targets,):
                raise ConfigError(
                    f"the network outputs shape {output_shape} but the data have {targets} labels; make the last "
                    f"layer `dense` with units: {targets} (one logit per label, no sigmoid)."
                )
            self.multilabel = True
            return
        super().check(output_shape, task, num_classes, targets)
        if num_classes != 2 or output_shape != (1,):
            raise ConfigError(
                f"binary_cross_entropy needs 2 classes and 1 output unit; the data have {num_classes} classes and "
                f"the network outputs shape {output_shape}. "
                + ("Make the last layer `dense` with units: 1." if num_classes == 2 else "Use loss: cross_entropy.")
            )

    def forward(self, out, y):
        if self.multilabel:
            return self._multilabel_forward(out, y)
        z = out[:, 0]
        share = None
        if self.weighted:
            y, share = self._row_weights(y, out.dtype)
        t = y.astype(out.dtype)
        loss = self.xp.maximum(z, 0) - z * t + self.xp.log1p(self.xp.exp(-self.xp.abs(z)))
        self._cache = (z, t, share)
        return float(self.xp.mean(loss)) if share is None else float(loss @ share)

    def backward(self):
        z, t, share = self._take_cache()
        p = 0.5 * self.xp.tanh(0.5 * z) + 0.5  # sigmoid(z)
        if z.ndim == 2:  # multilabel: share is (N, 1), or None for the plain mean over N * T
            return (p - t) * (z.dtype.type(1.0 / z.size) if share is None else share)
        return ((p - t) * (z.dtype.type(1.0 / len(z)) if share is None else share))[:, None]

    def _multilabel_forward(self, out, y):
        """L = sum_i w_i mean_t(softplus(z_it) - y_it z_it) / sum_i w_i (w = 1 without sample weights)."""
        t, w = self._split_weight(y)
        t = t.astype(out.dtype)
        loss = self.xp.maximum(out, 0) - out * t + self.xp.log1p(self.xp.exp(-self.xp.abs(out)))  # (N, T)
        share = None if w is None else self._normalized(w, out.dtype)[:, None] / out.dtype.type(out.shape[1])
        self._cache = (out, t, share)
        return float(self.xp.mean(loss)) if share is None else float(self.xp.sum(loss * share))

    def probabilities(self, out):
        if self.multilabel:
            return 0.5 * self.xp.tanh(0.5 * out) + 0.5  # (N, T): each label's own probability
        p1 = 0.5 * self.xp.tanh(0.5 * out[:, 0]) + 0.5
        return self.xp.stack([1 - p1, p1], axis=1)

    def predict(self, out):
        if self.multilabel:
            return (out > 0).astype(np.int64)  # (N, T)
        return (out[:, 0] > 0).astype(np.int64)


@LOSSES.register("cross_entropy")
class CrossEntropy(_Classification):
    """L = mean(-log softmax(z)_y) for logits z and integer labels y; softmax fused in (stable)."""

    def check(self, output_shape, task, num_classes, targets):
        super().check(output_shape, task, num_classes, targets)
        if output_shape != (num_classes,):
            raise ConfigError(
                f"the network outputs shape {output_shape} but the data have {num_classes} classes; "
                f"make the last layer `dense` with units: {num_classes} (no softmax: cross_entropy applies it)."
            )

    def forward(self, out, y):
        if self.weighted:
            return self._weighted_forward(out, y)
        xp = self.xp
        z = out - out.max(axis=1, keepdims=True)
        rows = xp.arange(len(y))
        picked = z[rows, y]
        xp.exp(z, out=z)
        total = z.sum(axis=1)
        z /= total[:, None]  # probabilities, kept for backward
        self._cache = (z, y, rows)
        xp.log(total, out=total)
        return float(total.sum() - picked.sum()) / len(y)  # mean(log-sum-exp - true logit)

    def backward(self):
        cache = self._take_cache()
        p, y, rows = cache[:3]
        dz = p  # reuse the buffer: (p - onehot) / N, or (p - onehot) * w_i / sum(w)
        dz[rows, y] -= 1
        if len(cache) == 4:
            dz *= cache[3][:, None]
        else:
            dz *= dz.dtype.type(1.0 / len(y))
        return dz

    def _weighted_forward(self, out, y):
        """L = sum_i w_i (-log softmax(z_i)_{y_i}) / sum_i w_i."""
        xp = self.xp
        y, share = self._row_weights(y, out.dtype)
        z = out - out.max(axis=1, keepdims=True)
        rows = xp.arange(len(y))
        picked = z[rows, y]
        xp.exp(z, out=z)
        total = z.sum(axis=1)
        z /= total[:, None]
        self._cache = (z, y, rows, share)
        return float((xp.log(total) - picked) @ share)

    def probabilities(self, out):
        z = out - out.max(axis=1, keepdims=True)
        self.xp.exp(z, out=z)
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, out):
        return self.xp.argmax(out, axis=1)
