"""Residual block: y = layers(x) + shortcut(x), for dense and convolutional layers alike, nestable."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, field_validator

from nnctl import registry
from nnctl.errors import ConfigError
from nnctl.nn.layer import Layer
from nnctl.registry import LAYERS, Params


def _validate_layers(items: list[Any]) -> list[Any]:
    """Validate each inner layer against its own registered spec (done lazily: every layer is registered by then)."""
    out = []
    for i, item in enumerate(items):
        item = {"type": item} if isinstance(item, str) else item
        if not isinstance(item, dict) or "type" not in item:
            raise ValueError(f"layers[{i}] must be a mapping with a 'type' key, got {item!r}")
        try:
            entry = LAYERS.get(item["type"])
        except ConfigError as exc:
            raise ValueError(f"layers[{i}]: {exc}") from None
        try:
            out.append(entry.spec.model_validate(item))
        except ValidationError as exc:
            problems = "; ".join(
                f"layers[{i}].{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ValueError(problems) from None
    return out


@LAYERS.register("residual")
class Residual(Layer):
    """y = layers(x) + x, or + projection(x) (dense, or a 1x1 conv with stride) when the shapes differ."""

    class Params(Params):
        layers: list[Any] = Field(
            ..., min_length=1, description="Layers applied in order to the block's input (any layer, residual too)."
        )
        projection: Literal["auto", "always"] = Field(
            "auto",
            description="auto: a learned linear projection of the input only where the layers change its shape; "
            "always: one even when the shapes agree.",
        )

        @field_validator("layers")
        @classmethod
        def _inner_layers(cls, items: list[Any]) -> list[Any]:
            return _validate_layers(items)

    def setup(self):
        self.layers = [registry.LAYERS.create(spec) for spec in self.layers]  # the specs become layers
        self.projection_layer: Layer | None = None  # made in build when needed (`projection` is the mode)

    def children(self) -> list[tuple[str, Layer]]:
        named = [(f"layers.{i}", layer) for i, layer in enumerate(self.layers)]
        return named + ([("projection", self.projection_layer)] if self.projection_layer is not None else [])

    def _build(self, input_shape, rng):
        shape = input_shape
        for i, layer in enumerate(self.layers):
            try:
                shape = layer.build(shape, rng, self.dtype, self.device)
            except ConfigError as exc:
                raise ConfigError(f"residual layers[{i}] ({layer.name}): {exc}") from None
        if shape != input_shape or self.projection == "always":
            self.projection_layer = self._make_projection(input_shape, shape)
            self.projection_layer.build(input_shape, rng, self.dtype, self.device)
        return shape

    def _make_projection(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Layer:
        if len(in_shape) == 1 and len(out_shape) == 1:
            return LAYERS.create({"type": "dense", "units": out_shape[0], "use_bias": False})
        if len(in_shape) == len(out_shape) and len(in_shape) in (2, 3):
            strides = [i // o if o and i % o == 0 else 0 for i, o in zip(in_shape[1:], out_shape[1:], strict=True)]
            if all(strides):
                kind = "conv1d" if len(in_shape) == 2 else "conv2d"
                stride = strides[0] if len(strides) == 1 else strides
                return LAYERS.create(
                    {"type": kind, "filters": out_shape[0], "kernel_size": 1, "stride": stride, "use_bias": False}
                )
        raise ConfigError(
            f"the block's layers turn inputs of shape {in_shape} into {out_shape}; a residual connection needs the "
            "same shape, or one a linear projection can reach (flat -> flat; or the same number of spatial axes "
            "with each output size dividing the input size). Add a flatten inside or outside the block, or keep "
            "the block's spatial size."
        )

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        h = x
        for layer in self.layers:
            h = layer.forward(h, training=training)
        shortcut = self.projection_layer.forward(x, training=training) if self.projection_layer is not None else x
        if training:
            self._cache = True
        return h + shortcut

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self._take_cache()
        # The shortcut's input gradient is wanted only when the block's is (it is the network's first layer else).
        self.layers[0].needs_input_grad = self.needs_input_grad
        if self.projection_layer is not None:
            self.projection_layer.needs_input_grad = self.needs_input_grad
        dh = dy
        for layer in reversed(self.layers):
            dh = layer.backward(dh)
        if self.projection_layer is not None:
            shortcut = self.projection_layer.backward(dy)
        else:
            shortcut = dy
        if not self.needs_input_grad:
            return None  # type: ignore[return-value]
        return dh + shortcut

    def param_count(self) -> int:
        return super().param_count() + sum(child.param_count() for _, child in self.children())

    def describe(self) -> str:
        inner = " -> ".join(f"{layer.describe()} {layer.output_shape}" for layer in self.layers)
        if self.projection_layer is not None:
            shortcut = f"{self.projection_layer.describe()} {self.projection_layer.output_shape}"
        else:
            shortcut = "identity"
        return f"residual[{inner}] + {shortcut}"
