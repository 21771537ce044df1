"""Sequential network: shape inference at build, flat parameter/gradient buffers, summary table."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from nnctl.device import CPU, Device
from nnctl.errors import ConfigError
from nnctl.nn.layer import Layer
from nnctl.nn.pool import fuse_relu_masks
from nnctl.rng import rng_for


def walk(layer: Layer, prefix: str) -> Iterator[tuple[str, Layer]]:
    """(dotted prefix, layer) for a layer and, depth first, every layer it contains."""
    yield prefix, layer
    for child_name, child in getattr(layer, "children", lambda: [])():
        yield from walk(child, f"{prefix}{child_name}.")


def _slots(layer: Layer, prefix: str) -> Iterator[tuple[str, Layer, str]]:
    """(dotted name, owning layer, key) for every parameter, containers included."""
    for key in layer.params:
        yield f"{prefix}{key}", layer, key
    for child_name, child in getattr(layer, "children", list)():
        yield from _slots(child, f"{prefix}{child_name}.")


class Network:
    """Layers applied in order. After build, all parameters live in one flat buffer (and all
    gradients in another), and each layer holds views into them: an optimizer step is a few
    vector operations over the whole model instead of a Python loop over arrays.

    Every array lives on `device` (given at build, default the CPU): `forward`/`backward` take and
    return device arrays; `predict`, `host_params` and `host_buffers` are the boundary to NumPy."""

    def __init__(self, layers: list[Layer]):
        self.layers = layers
        self.input_shape: tuple[int, ...] = ()
        self.output_shape: tuple[int, ...] = ()
        self.param_slices: dict[str, tuple[int, tuple[int, ...]]] = {}
        self.device: Device = CPU
        self.flat_params = np.zeros(0)
        self.flat_grads = np.zeros(0)

    @property
    def xp(self):
        return self.device.xp

    def build(
        self, input_shape: tuple[int, ...], rng: np.random.Generator, dtype=np.float32, device: Device | None = None
    ) -> Network:
        self.device = device or CPU
        self.input_shape = tuple(input_shape)
        shape = self.input_shape
        for i, layer in enumerate(self.layers):
            try:
                shape = layer.build(shape, rng, dtype, self.device)
            except ConfigError as exc:
                raise ConfigError(f"model.layers[{i}] ({layer.name}): {exc}") from None
            except (MemoryError, ValueError, OverflowError) as exc:  # e.g. units: 1000000000000
                if isinstance(exc, ValueError) and "too big" not in str(exc) and "negative dimensions" not in str(exc):
                    raise
                raise ConfigError(
                    f"model.layers[{i}] ({layer.name}): its weights do not fit in memory ({exc}); "
                    "use fewer units, filters or a smaller input."
                ) from None
        self.output_shape = shape
        fuse_relu_masks(self.layers)
        if self.layers:
            self.layers[0].needs_input_grad = False
        try:
            self._flatten(np.dtype(dtype))
        except MemoryError as exc:
            raise ConfigError(f"model.layers: the network's weights do not fit in memory ({exc}).") from None
        self._stochastic = any(layer.stochastic for _, layer in self.all_layers())
        return self

    def _flatten(self, dtype: np.dtype) -> None:
        slots = [
            (name, owner, key) for i, layer in enumerate(self.layers) for name, owner, key in _slots(layer, f"{i}.")
        ]
        total = sum(owner.params[key].size for _, owner, key in slots)
        self.flat_params = self.xp.zeros(total, dtype=dtype)
        self.flat_grads = self.xp.zeros(total, dtype=dtype)
        offset = 0
        for name, owner, key in slots:
            value = owner.params[key]
            size, shape = value.size, value.shape
            view = self.flat_params[offset : offset + size].reshape(shape)
            view[...] = value
            owner.params[key] = view
            owner.grads[key] = self.flat_grads[offset : offset + size].reshape(shape)
            self.param_slices[name] = (offset, shape)
            offset += size
        for owner in {id(owner): owner for _, owner, _ in slots}.values():
            owner._bind_params()

    def all_layers(self) -> Iterator[tuple[str, Layer]]:
        for i, layer in enumerate(self.layers):
            yield from walk(layer, f"{i}.")

    def start_epoch(self, seed: int, epoch: int, stream: int, more: tuple[int, ...] = ()) -> None:
        """Give every stochastic layer its Generator for this epoch (a pure function of seed, epoch, layer
        and `more`: the rank of a data-parallel process, empty with one process)."""
        if not self._stochastic:
            return
        for k, (_, layer) in enumerate(self.all_layers()):
            if layer.stochastic:
                layer.rng = rng_for(seed, stream, epoch, k, *more)

    def named_buffers(self) -> dict[str, np.ndarray]:
        """The layers' buffers by dotted name: the device arrays themselves (views that update in place)."""
        return {f"{prefix}{key}": value for prefix, layer in self.all_layers() for key, value in layer.buffers.items()}

    def host_buffers(self) -> dict[str, np.ndarray]:
        """Copies of the buffers as NumPy arrays (what a checkpoint stores)."""
        return {name: self.device.to_host(value).copy() for name, value in self.named_buffers().items()}

    def host_params(self) -> np.ndarray:
        """A NumPy copy of the flat parameter buffer."""
        return self.device.to_host(self.flat_params).copy()

    def load_buffers(self, arrays: dict[str, np.ndarray], source: str = "checkpoint") -> None:
        """Set every buffer from `arrays` (host or device arrays, by dotted name)."""
        for prefix, layer in self.all_layers():
            for key, value in layer.buffers.items():
                name = f"{prefix}{key}"
                if name not in arrays or arrays[name].shape != value.shape:
                    raise ConfigError(f"{source} has no state '{name}' of shape {value.shape} for this network.")
                value[...] = self.device.to_device(arrays[name])

    def penalized(self) -> list[tuple[int, str, np.ndarray, np.ndarray]]:
        """(top-level layer index, dotted name, param view, grad view) for every penalized parameter."""
        out = []
        for i, layer in enumerate(self.layers):
            for prefix, sub in walk(layer, f"{i}."):
                for key in sub.penalized_keys():
                    out.append((i, f"{prefix}{key}", sub.params[key], sub.grads[key]))
        return out

    def decay_mask(self) -> np.ndarray:
        """1 for flat-buffer entries of penalized parameters (weights), 0 elsewhere (biases, norm scales)."""
        mask = self.xp.zeros_like(self.flat_params)
        for _, name, _, _ in self.penalized():
            offset, shape = self.param_slices[name]
            mask[offset : offset + int(np.prod(shape))] = 1
        return mask

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, dy: np.ndarray) -> None:
        for layer in reversed(self.layers):
            dy = layer.backward(dy)

    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Forward in eval mode on host inputs, in batches so memory stays bounded; a NumPy array out
        (each batch moved to the device and its output back)."""
        if len(x) == 0:
            return np.zeros((0,) + self.output_shape, dtype=self.flat_params.dtype)
        dev = self.device
        parts = [
            dev.to_host(self.forward(dev.to_device(x[i : i + batch_size]), training=False))
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    # --- named parameters (shared by optimizer state and checkpoints) ---

    def named_params(self) -> dict[str, np.ndarray]:
        return {
            name: self.flat_params[o : o + int(np.prod(s))].reshape(s) for name, (o, s) in self.param_slices.items()
        }

    def load_params(self, arrays: dict[str, np.ndarray], source: str = "checkpoint") -> None:
        missing = set(self.param_slices) - set(arrays)
        extra = set(arrays) - set(self.param_slices)
        if missing or extra:
            raise ConfigError(
                f"{source} does not match the network: missing {sorted(missing) or 'none'}, "
                f"unexpected {sorted(extra) or 'none'}."
            )
        for name, (offset, shape) in self.param_slices.items():
            value = arrays[name]
            if value.shape != shape:
                raise ConfigError(f"{source}: parameter {name} has shape {value.shape}, the network needs {shape}.")
            self.flat_params[offset : offset + value.size] = self.device.to_device(value.ravel())

    @property
    def param_count(self) -> int:
        return int(self.flat_params.size)

    def summary_rows(self) -> list[tuple[str, str, str, int]]:
        rows = [("", "input", str(self.input_shape), 0)]
        for i, layer in enumerate(self.layers):
            rows.append((str(i), layer.describe(), str(layer.output_shape), layer.param_count()))
        return rows

    def summary(self) -> str:
        rows = [("#", "layer", "output shape", "params")] + [(a, b, c, f"{d:,}") for a, b, c, d in self.summary_rows()]
        widths = [max(len(r[k]) for r in rows) for k in range(4)]
        lines = [
            "  ".join(
                cell.ljust(w) if k < 3 else cell.rjust(w) for k, (cell, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        lines.append("-" * len(lines[0]))
        lines.append(f"total parameters: {self.param_count:,}")
        return "\n".join(lines)
