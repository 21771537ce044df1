"""Polynomial feature expansion as a layer, so a saved model carries it into eval and predict."""

from __future__ import annotations

from pydantic import Field

from nnctl.nn.layer import Layer, require_flat
from nnctl.registry import LAYERS, Params


@LAYERS.register("polynomial")
class Polynomial(Layer):
    """y = [x, x^2, ..., x^degree] per input feature (no cross terms); with a dense layer after it: polynomial regression."""

    class Params(Params):
        degree: int = Field(
            ..., ge=1, le=30, description="Highest power. Normalize inputs to [-1, 1] first so high powers stay tame."
        )

    def _build(self, input_shape, rng):
        return (require_flat(self, input_shape) * self.degree,)

    def forward(self, x, *, training):
        powers = [x]
        for _ in range(self.degree - 1):
            powers.append(powers[-1] * x)
        if training:
            self._cache = powers
        return self.xp.concatenate(powers, axis=1)  # (N, F * degree): all features' x, then all x^2, ...

    def backward(self, dy):
        powers = self._take_cache()
        f = powers[0].shape[1]
        dx = dy[:, :f].copy()
        for k in range(2, self.degree + 1):  # d x^k / dx = k x^(k-1)
            dx += dy[:, (k - 1) * f : k * f] * powers[k - 2] * dx.dtype.type(k)
        return dx

    def describe(self) -> str:
        return f"polynomial(degree {self.degree})"
