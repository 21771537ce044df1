"""Losses: forward(out, y) -> mean loss over the batch; backward() -> d loss / d out.

Classification losses take raw scores (logits) and fuse the output non-linearity, which is both
numerically stable and cheaper; `probabilities` turns network outputs into what users read.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from nnctl.errors import ConfigError
from nnctl.registry import LOSSES, Component, Params


class Loss(Component):
    task: Literal["classification", "regression"] = "regression"
    _cache: object = None

    @property
    def name(self) -> str:
        return getattr(self, "registered_name", type(self).__name__.lower())

    def forward(self, out: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def _take_cache(self) -> object:
        cache, self._cache = self._cache, None
        if cache is None:
            raise RuntimeError(f"{self.name}: backward() called without forward() before it")
        return cache

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
    def forward(self, out, y):
        diff = out - y
        self._cache = diff
        return self._value(diff)


@LOSSES.register("mse")
class MSE(_Regression):
    """L = mean((out - y)^2) over samples and outputs."""

    def _value(self, diff):
        flat = diff.reshape(-1)
        return float(flat @ flat) / flat.size  # one dot product instead of square + mean

    def backward(self):
        diff = self._take_cache()
        return diff * diff.dtype.type(2.0 / diff.size)


@LOSSES.register("mae")
class MAE(_Regression):
    """L = mean(|out - y|); robust to outliers, constant-size gradients."""

    def _value(self, diff):
        return float(np.mean(np.abs(diff)))

    def backward(self):
        diff = self._take_cache()
        return np.sign(diff) * diff.dtype.type(1.0 / diff.size)


@LOSSES.register("huber")
class Huber(_Regression):
    """L = mean(0.5 d^2 if |d| <= delta else delta (|d| - 0.5 delta)), d = out - y: MSE near 0, MAE far away."""

    class Params(Params):
        delta: float = Field(1.0, gt=0, description="Where the quadratic part turns linear.")

    def _value(self, diff):
        a = np.abs(diff)
        return float(np.mean(np.where(a <= self.delta, 0.5 * diff * diff, self.delta * (a - 0.5 * self.delta))))

    def backward(self):
        diff = self._take_cache()
        return np.clip(diff, -self.delta, self.delta) * diff.dtype.type(1.0 / diff.size)


@LOSSES.register("binary_cross_entropy")
class BinaryCrossEntropy(Loss):
    """L = mean(softplus(z) - y z) for one logit z per sample and y in {0, 1}; sigmoid fused in (stable)."""

    task = "classification"

    def check(self, output_shape, task, num_classes, targets):
        super().check(output_shape, task, num_classes, targets)
        if num_classes != 2 or output_shape != (1,):
            raise ConfigError(
                f"binary_cross_entropy needs 2 classes and 1 output unit; the data have {num_classes} classes and "
                f"the network outputs shape {output_shape}. "
                + ("Make the last layer `dense` with units: 1." if num_classes == 2 else "Use loss: cross_entropy.")
            )

    def forward(self, out, y):
        z = out[:, 0]
        t = y.astype(out.dtype)
        loss = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        self._cache = (z, t)
        return float(np.mean(loss))

    def backward(self):
        z, t = self._take_cache()
        p = 0.5 * np.tanh(0.5 * z) + 0.5  # sigmoid(z)
        return ((p - t) * z.dtype.type(1.0 / len(z)))[:, None]

    def probabilities(self, out):
        p1 = 0.5 * np.tanh(0.5 * out[:, 0]) + 0.5
        return np.stack([1 - p1, p1], axis=1)

    def predict(self, out):
        return (out[:, 0] > 0).astype(np.int64)


@LOSSES.register("cross_entropy")
class CrossEntropy(Loss):
    """L = mean(-log softmax(z)_y) for logits z and integer labels y; softmax fused in (stable)."""

    task = "classification"

    def check(self, output_shape, task, num_classes, targets):
        super().check(output_shape, task, num_classes, targets)
        if output_shape != (num_classes,):
            raise ConfigError(
                f"the network outputs shape {output_shape} but the data have {num_classes} classes; "
                f"make the last layer `dense` with units: {num_classes} (no softmax: cross_entropy applies it)."
            )

    def forward(self, out, y):
        z = out - np.maximum.reduce(out, axis=1, keepdims=True)
        rows = np.arange(len(y))
        picked = z[rows, y]
        np.exp(z, out=z)
        total = np.add.reduce(z, axis=1)
        z /= total[:, None]  # probabilities, kept for backward
        self._cache = (z, y, rows)
        np.log(total, out=total)
        return float(np.add.reduce(total) - np.add.reduce(picked)) / len(y)  # mean(log-sum-exp - true logit)

    def backward(self):
        p, y, rows = self._take_cache()
        dz = p  # reuse the buffer: (p - onehot) / N
        dz[rows, y] -= 1
        dz *= dz.dtype.type(1.0 / len(y))
        return dz

    def probabilities(self, out):
        z = out - out.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, out):
        return np.argmax(out, axis=1)
