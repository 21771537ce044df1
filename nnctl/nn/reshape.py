"""Shape-only layers: flatten maps to dense layers, reshape turns flat vectors into maps."""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from nnctl.errors import ConfigError
from nnctl.nn.layer import Layer
from nnctl.registry import LAYERS, Params


@LAYERS.register("flatten")
class Flatten(Layer):
    """y = x.reshape(N, -1) in channel-first order (C, H, W), as PyTorch flattens."""

    def _build(self, input_shape, rng):
        return (int(np.prod(input_shape)),)

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        if training:
            self._cache = x.shape
        # A copy when x is a channels-last view from a conv/pool layer; C order keeps (C, H, W) order.
        return x.reshape(len(x), -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self._take_cache())


@LAYERS.register("reshape")
class Reshape(Layer):
    """y = x.reshape(N, *shape); one entry of shape may be -1 (inferred)."""

    class Params(Params):
        shape: list[int] = Field(
            ..., min_length=1, description="Target shape of one sample, e.g. [1, 8, 8]; one entry may be -1."
        )

        @field_validator("shape")
        @classmethod
        def _sizes(cls, shape: list[int]) -> list[int]:
            if any(s == 0 or s < -1 for s in shape) or shape.count(-1) > 1:
                raise ValueError(f"entries must be positive, with at most one -1; got {shape}")
            return shape

    def _build(self, input_shape, rng):
        size = int(np.prod(input_shape))
        known = int(np.prod([s for s in self.shape if s != -1]))
        shape = [size // known if s == -1 else s for s in self.shape] if size % known == 0 else self.shape
        if int(np.prod(shape)) != size:
            raise ConfigError(
                f"cannot reshape inputs of shape {input_shape} ({size} values) to {self.shape}; the sizes must "
                "multiply to the same number."
            )
        return tuple(shape)

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        if training:
            self._cache = x.shape
        return x.reshape(len(x), *self.output_shape)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self._take_cache())

    def describe(self) -> str:
        return f"reshape({self.shape})"
