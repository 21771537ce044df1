"""Embedding layers: token embedding and time-distributed dense for sequences; category embedding for tables."""

from __future__ import annotations

import numpy as np
from pydantic import Field, PositiveInt

from nnctl.errors import ConfigError, DataError
from nnctl.nn.dense import Dense
from nnctl.nn.layer import Layer
from nnctl.registry import LAYERS, Params


def token_ids(x: np.ndarray, vocab_size: int, layer: str, what: str, fix: str, xp=np) -> np.ndarray:
    """x (floats holding whole numbers) as integer ids; DataError (ending with `fix`) for one outside
    0..vocab_size-1 or a fraction. `xp`: the array module of x's device."""
    ids = xp.rint(x).astype(np.intp)
    off = xp.abs(x - ids) > 1e-3  # whole numbers (up to rounding noise)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size or off.any()):
        bad = float(x[(ids < 0) | (ids >= vocab_size) | off][0])
        raise DataError(f"{layer}: input {bad!r} is not a {what} id in 0..{vocab_size - 1}. {fix}")
    return ids


def sum_rows(grad: np.ndarray, ids: np.ndarray, dy: np.ndarray, xp=np) -> None:
    """grad[i] = the sum of the rows of dy (M, dim) whose id is i, 0 for ids not present (assigned in place).
    `xp`: the array module of the arrays' device."""
    grad[...] = 0
    # Sort once, then one reduceat (np.add.at is many times slower).
    flat = ids.reshape(-1)
    order = xp.argsort(flat, kind="stable")
    sorted_ids = flat[order]
    if sorted_ids.size:
        first = xp.ones(sorted_ids.shape, dtype=bool)  # where a run of equal ids starts
        first[1:] = sorted_ids[1:] != sorted_ids[:-1]
        starts = xp.flatnonzero(first)
        grad[sorted_ids[starts]] = xp.add.reduceat(dy[order], starts, axis=0)


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
        return token_ids(
            x,
            self.vocab_size,
            "embedding",
            "token",
            "Token data must be whole numbers below vocab_size; set data.normalize: none (normalization turns ids "
            "into fractions) or raise vocab_size.",
            self.xp,
        )

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        ids = self._ids(x)
        y = self.xp.take(self.params["weight"], ids, axis=0)  # (N, T, dim)
        if training:
            self._cache = (ids, x.shape)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        ids, shape = self._take_cache()
        sum_rows(self.grads["weight"], ids, dy.reshape(-1, self.dim), self.xp)
        if not self.needs_input_grad:
            return None  # type: ignore[return-value]
        return self.xp.zeros(shape, dtype=dy.dtype)

    def describe(self) -> str:
        return f"embedding({self.vocab_size} -> {self.dim})"


@LAYERS.register("category_embedding")
class CategoryEmbedding(Layer):
    """y = [x[:, :F-k], weight_0[id_0], ..., weight_{k-1}[id_{k-1}]]: the last k inputs are category ids (a
    table's `encoding: embedding` columns), each replaced by its learned vector; the other inputs pass through.

    (F,) -> (F - k + sum(dims),). Written first in model.layers; with a table, vocab_sizes and dims come from
    its embedding columns (levels + 'other'; each column's `dim`), so a config says just `category_embedding`.
    """

    class Params(Params):
        vocab_sizes: list[PositiveInt] | None = Field(
            None,
            description="Ids per embedded column (its levels + 'other'), for the last len(vocab_sizes) inputs; "
            "default: from the table's encoding: embedding columns.",
        )
        dims: list[PositiveInt] | None = Field(
            None, description="Vector length per embedded column; default: each column's dim in the table."
        )
        scale: float = Field(1.0, gt=0, description="Standard deviation of the initial vectors (normal).")

    def _build(self, input_shape, rng):
        sizes, dims = self.vocab_sizes or [], self.dims or []
        if not sizes or len(dims) != len(sizes):
            raise ConfigError(
                "category_embedding needs one vocab size and one dim per embedded column "
                f"(vocab_sizes {self.vocab_sizes}, dims {self.dims}); with a table they come from its columns "
                "declared encoding: embedding, and there are none."
            )
        if len(input_shape) != 1 or input_shape[0] < len(sizes):
            raise ConfigError(
                f"category_embedding expects flat rows ending with {len(sizes)} category id(s), but gets inputs of "
                f"shape {input_shape}; it must be the first layer."
            )
        for j, (size, dim) in enumerate(zip(sizes, dims, strict=True)):
            self._param(f"weight_{j}", rng.normal(0.0, self.scale, size=(size, dim)))
        self.plain = input_shape[0] - len(sizes)  # inputs that pass through
        return (self.plain + sum(dims),)

    def example_input(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Numbers, then valid ids, for gradient checks."""
        ids = [rng.integers(0, size, size=(n, 1)) for size in self.vocab_sizes]
        return np.concatenate([rng.standard_normal((n, self.plain)), *ids], axis=1).astype(self.dtype)

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        fix = "The ids come from the table's encoding: embedding columns; feed the run raw rows (nnctl predict)."
        ids = [
            token_ids(x[:, self.plain + j], size, "category_embedding", "category", fix, self.xp)
            for j, size in enumerate(self.vocab_sizes)
        ]
        vectors = [self.xp.take(self.params[f"weight_{j}"], i, axis=0) for j, i in enumerate(ids)]  # (N, dim_j) each
        if training:
            self._cache = (ids, x.shape)
        return self.xp.concatenate([x[:, : self.plain], *vectors], axis=1)  # (N, plain + sum(dims))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        ids, shape = self._take_cache()
        start = self.plain
        for j, dim in enumerate(self.dims):
            sum_rows(self.grads[f"weight_{j}"], ids[j], dy[:, start : start + dim], self.xp)
            start += dim
        if not self.needs_input_grad:
            return None  # type: ignore[return-value]
        dx = self.xp.zeros(shape, dtype=dy.dtype)
        dx[:, : self.plain] = dy[:, : self.plain]  # ids are not differentiable
        return dx

    def describe(self) -> str:
        pairs = ", ".join(f"{size} -> {dim}" for size, dim in zip(self.vocab_sizes, self.dims, strict=True))
        return f"category_embedding({pairs})"


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
