"""Weight penalties and constraints, registered in REGULARIZERS.

A penalty adds `value(w)` to the training loss and `grad(w)` to the weight gradient. Conventions:
l2 is (rate / 2) * sum(w^2), so its gradient rate * w equals SGD's `weight_decay` and the
TensorFlow Playground's L2; l1 is rate * sum(|w|). They apply to weights, never to biases or
normalization scales. A constraint (max_norm) instead projects weights after each step.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from nnctl.device import OnDevice
from nnctl.registry import REGULARIZERS, Component, Params


class Regularizer(OnDevice, Component):
    is_constraint = False

    def value(self, w: np.ndarray) -> float:
        return 0.0

    def add_grad(self, w: np.ndarray, g: np.ndarray) -> None:
        """g += d value / d w, in place."""

    def project(self, w: np.ndarray) -> None:
        """Constraints: modify w in place after an optimizer step."""


@REGULARIZERS.register("l2")
class L2(Regularizer):
    """penalty = (rate / 2) * sum(w^2); gradient rate * w ("weight decay", ridge)."""

    class Params(Params):
        rate: float = Field(..., ge=0, description="Strength; the gradient adds rate * w.")

    def value(self, w):
        flat = w.reshape(-1)
        return 0.5 * self.rate * float(flat @ flat)

    def add_grad(self, w, g):
        g += w * w.dtype.type(self.rate)


@REGULARIZERS.register("l1")
class L1(Regularizer):
    """penalty = rate * sum(|w|); gradient rate * sign(w): pushes small weights to exactly 0 (sparse, lasso)."""

    class Params(Params):
        rate: float = Field(..., ge=0, description="Strength; the gradient adds rate * sign(w).")

    def value(self, w):
        return self.rate * float(self.xp.abs(w).sum())

    def add_grad(self, w, g):
        g += self.xp.sign(w) * w.dtype.type(self.rate)


@REGULARIZERS.register("l1_l2")
class L1L2(Regularizer):
    """penalty = l1 * sum(|w|) + (l2 / 2) * sum(w^2) (elastic net)."""

    class Params(Params):
        l1: float = Field(0.0, ge=0, description="L1 strength.")
        l2: float = Field(0.0, ge=0, description="L2 strength.")

    def setup(self):
        self._l1, self._l2 = L1(rate=self.l1), L2(rate=self.l2)

    def to(self, device):
        self._l1.to(device)
        self._l2.to(device)
        return super().to(device)

    def value(self, w):
        return self._l1.value(w) + self._l2.value(w)

    def add_grad(self, w, g):
        self._l1.add_grad(w, g)
        self._l2.add_grad(w, g)


@REGULARIZERS.register("max_norm")
class MaxNorm(Regularizer):
    """Constraint: after each step, rescale each unit's incoming weight vector to norm <= max (Srebro 2005; used with dropout)."""

    is_constraint = True

    class Params(Params):
        max: float = Field(3.0, gt=0, description="Largest allowed L2 norm of a unit's incoming weights.")

    def project(self, w):
        # Incoming weights of a unit: everything but the last axis for dense (fan_in, units).
        w2 = w.reshape(-1, w.shape[-1])
        norms = self.xp.sqrt((w2 * w2).sum(axis=0))
        scale = self.xp.minimum(1, self.max / self.xp.maximum(norms, 1e-12)).astype(w.dtype)
        w2 *= scale
