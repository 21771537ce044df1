"""Per-time-step layers for sequences: token embedding and time-distributed dense."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from nnctl.errors import ConfigError, DataError
from nnctl.nn.dense import Dense
from nnctl.nn.layer import Layer
from nnctl.registry import LAYERS, Params


@LAYERS.register("embedding")
class Embedding(Layer):
    """y[..., :] = weight[id]: a learned vector per token id; inputs (T,) of ids 0..vocab_size-1 -> (T, dim).

    Data hold token ids as floats (the engine's dtype); they are rounded to integers here. Ids are not
    differentiable: the gradient towards the input is zero.
    """

    class Params(Params):
        vocab_size: int = Field(
            ..., gt=0, description="Number of distinct token ids; ids run from 0 to vocab_size - 1."
        )
        dim: int = Field(..., gt=0, description="Length of each token's vector.")
        scale: float = Field(1.0, gt=0, description="Standard deviation of the initial vectors (normal).")

    def _build(self, input_shape, rng):
        self._param("weight", rng.normal(0.0, self.scale, size=(self.vocab_size, self.dim)))
        return tuple(input_shape) + (self.dim,)

    def example_input(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Valid random inputs (token ids) for gradient checks, which cannot use Gaussian noise here."""
        return rng.integers(0, self.vocab_size, size=(n,) + self.input_shape).astype(self.dtype)

    def _ids(self, x: np.ndarray) -> np.ndarray:
        ids = np.rint(x).astype(np.intp)
        off = np.abs(x - ids) > 1e-3  # whole numbers (up to rounding noise)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size or off.any()):
            bad = x[(ids < 0) | (ids >= self.vocab_size) | off][0]
            raise DataError(
                f"embedding: input {bad!r} is not a token id in 0..{self.vocab_size - 1}. Token data must be whole "
                "numbers below vocab_size; set data.normalize: none (normalization turns ids into fractions) "
                "or raise vocab_size."
            )
        return ids

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        ids = self._ids(x)
        y = np.take(self.params["weight"], ids, axis=0)  # (N, T, dim)
        if training:
            self._cache = (ids, x.shape)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        ids, shape = self._take_cache()
        grad = self.grads["weight"]
        grad[...] = 0
        # Sum the rows of dy per id: sort once, then one reduceat (np.add.at is many times slower).
        flat = ids.reshape(-1)
        order = np.argsort(flat, kind="stable")
        sorted_ids = flat[order]
        if sorted_ids.size:
            starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
            grad[sorted_ids[starts]] = np.add.reduceat(dy.reshape(-1, self.dim)[order], starts, axis=0)
        if not self.needs_input_grad:
            return None  # type: ignore[return-value]
        return np.zeros(shape, dtype=dy.dtype)

    def describe(self) -> str:
        return f"embedding({self.vocab_size} -> {self.dim})"


@LAYERS.register("time_distributed_dense")
class TimeDistributedDense(Dense):
    """y_t = act(x_t @ weight + bias) at every time step: the same dense layer applied to each x_t of (T, F) -> (T, units)."""

    def _build(self, input_shape, rng):
        if len(input_shape) != 2:
            raise ConfigError(
                f"layer '{self.name}' expects sequences of shape (T, F) but gets inputs of shape {input_shape}; "
                "use `dense` for flat feature vectors."
            )
        return (input_shape[0],) + super()._build(input_shape[1:], rng)

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        n, t, f = x.shape
        return super().forward(x.reshape(n * t, f), training=training).reshape(n, t, -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        n, t, u = dy.shape
        dx = super().backward(dy.reshape(n * t, u))
        return None if dx is None else dx.reshape(n, t, -1)  # type: ignore[return-value]

    def describe(self) -> str:
        return "time_distributed_" + super().describe()
