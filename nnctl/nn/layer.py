"""Layer base class: build / forward / backward with named parameters and assigned gradients."""

from __future__ import annotations

from typing import Any

import numpy as np

from nnctl.errors import ConfigError
from nnctl.registry import Component


class Layer(Component):
    """Base layer. Subclasses fill `params` in build() and write `grads` (same keys) in backward().

    Hyper-parameters follow the registry's Component convention: declared once in `Params`, set as
    attributes by the constructor; state derived from them is made in `setup()`, never an `__init__`.

    Contract: shapes exclude the batch axis; `backward` assigns gradients (it never accumulates)
    and needs the cache of a training forward; the network may replace `params`/`grads` entries
    with views into flat buffers, so layers update them in place (`out=`, `[...] =`), never rebind.
    """

    # Set to False by the network for its first layer: nobody needs the gradient w.r.t. the data.
    needs_input_grad: bool = True
    # Layers that draw random numbers in training (dropout, noise) set this; the network hands them
    # a Generator per epoch (`self.rng`), so draws depend only on seed, epoch and step.
    stochastic: bool = False

    def __init__(self, **values: Any) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        # Non-trainable state saved in checkpoints (running statistics, step counters).
        self.buffers: dict[str, np.ndarray] = {}
        self.rng: np.random.Generator | None = None
        self.dtype = np.dtype(np.float32)
        self.input_shape: tuple[int, ...] = ()
        self.output_shape: tuple[int, ...] = ()
        self._cache: object = None
        super().__init__(**values)  # validates `values` with Params, sets them, then calls setup()

    @property
    def name(self) -> str:
        return getattr(self, "registered_name", type(self).__name__.lower())

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator, dtype=np.float32) -> tuple[int, ...]:
        """Create parameters for inputs of `input_shape`; return the output shape."""
        self.input_shape = tuple(input_shape)
        self.dtype = np.dtype(dtype)
        self.output_shape = self._build(self.input_shape, rng)
        return self.output_shape

    def _build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        return input_shape

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _take_cache(self) -> object:
        """Return and clear the training-forward cache; a backward without a forward fails loudly."""
        cache = self._cache
        if cache is None:
            raise RuntimeError(f"{self.name}: backward() called without a training forward() before it")
        self._cache = None
        return cache

    def penalized_keys(self) -> list[str]:
        """Parameters that weight penalties and decay apply to: weights, never biases or norm scales."""
        return [k for k in self.params if k == "weight" or k.startswith(("weight_", "w_", "kernel"))]

    def param_count(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def describe(self) -> str:
        """Short description for the network summary."""
        return self.name

    def _param(self, key: str, value: np.ndarray) -> None:
        self.params[key] = np.ascontiguousarray(value, dtype=self.dtype)
        self.grads[key] = np.zeros_like(self.params[key])


def require_flat(layer: Layer, input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 1:
        raise ConfigError(
            f"layer '{layer.name}' expects flat feature vectors but gets inputs of shape {input_shape}; "
            "add a `flatten` layer before it."
        )
    return input_shape[0]
