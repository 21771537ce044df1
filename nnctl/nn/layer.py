"""Layer base class: build / forward / backward with named parameters and assigned gradients."""

from __future__ import annotations

from typing import Any

import numpy as np

from nnctl.device import Device, OnDevice
from nnctl.errors import ConfigError
from nnctl.registry import Component


class Layer(OnDevice, Component):
    """Base layer. Subclasses fill `params` in build() and write `grads` (same keys) in backward().

    Hyper-parameters follow the registry's Component convention: declared once in `Params`, set as
    attributes by the constructor; state derived from them is made in `setup()`, never an `__init__`.

    Contract: shapes exclude the batch axis; `backward` assigns gradients (it never accumulates)
    and needs the cache of a training forward; the network may replace `params`/`grads` entries
    with views into flat buffers, so layers update them in place (`out=`, `[...] =`), never rebind.
    Arrays live on `self.device` (given at build): array functions come from `self.xp`, never `np`.
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

    def build(
        self, input_shape: tuple[int, ...], rng: np.random.Generator, dtype=np.float32, device: Device | None = None
    ) -> tuple[int, ...]:
        """Create parameters (on `device`, default the CPU) for inputs of `input_shape`; return the output shape.

        Initial values are drawn on the host from `rng` and moved, so a network starts from the same
        weights on every device."""
        if device is not None:
            self.device = device
        self.input_shape = tuple(input_shape)
        self.dtype = np.dtype(dtype)
        self.output_shape = self._build(self.input_shape, rng)
        self._bind_params()
        return self.output_shape

    def _build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        return input_shape

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _bind_params(self) -> None:
        """Called whenever `params`/`grads` entries are placed: at the end of build, and after the network
        replaced them with views into its flat buffers. A layer that keeps direct references to them
        takes them here (Dense does, for a small network's step)."""

    def _take_cache(self) -> object:
        """Return and clear the training-forward cache; a backward without a forward fails loudly."""
        cache = self._cache
        if cache is None:
            raise self._no_forward()
        self._cache = None
        return cache

    def _no_forward(self) -> RuntimeError:
        return RuntimeError(f"{self.name}: backward() called without a training forward() before it")

    def penalized_keys(self) -> list[str]:
        """Parameters that weight penalties and decay apply to: weights, never biases or norm scales."""
        return [k for k in self.params if k == "weight" or k.startswith(("weight_", "w_", "kernel"))]

    def param_count(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def describe(self) -> str:
        """Short description for the network summary."""
        return self.name

    def _param(self, key: str, value: np.ndarray) -> None:
        """A parameter from host values (drawn from the build's rng), moved to the device, and its gradient."""
        self.params[key] = self.device.to_device(np.ascontiguousarray(value, dtype=self.dtype))
        self.grads[key] = self.xp.zeros_like(self.params[key])

    def _register_buffer(self, key: str, value: np.ndarray) -> None:
        """Non-trainable state (checkpointed) from host values, moved to the device (a copy: its own memory)."""
        self.buffers[key] = self.device.to_device(np.array(value))


def require_flat(layer: Layer, input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 1:
        raise ConfigError(
            f"layer '{layer.name}' expects flat feature vectors but gets inputs of shape {input_shape}; "
            "add a `flatten` layer before it."
        )
    return input_shape[0]
