"""A small ONNX graph builder for the exporters: unique names, constants as initializers, one `op` call per node.

Exporters use only `Graph` and never import onnx themselves; the opset-dependent spellings (ReduceMean's
axes as attribute or input) live here once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnctl.export.registry import ExportError

MIN_OPSET = 14  # Reshape with allowzero, Softmax on the last axis, Round, Trilu-era shape ops
DEFAULT_OPSET = 17


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ExportError(
            "nnctl export needs the onnx package: pip install 'nnctl[onnx]' (onnx to write the model, "
            "onnxruntime to check it)."
        ) from None
    return onnx


class Graph:
    """Nodes and initializers of one ONNX graph under construction."""

    def __init__(self, opset: int, dtype=np.float32):
        self.onnx = _onnx()
        newest = self.onnx.defs.onnx_opset_version()
        if not MIN_OPSET <= opset <= newest:
            raise ExportError(f"--opset must be between {MIN_OPSET} and {newest} (this onnx), got {opset}.")
        self.opset = opset
        self.dtype = np.dtype(dtype)  # the network's float type in the graph
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: dict[str, int] = {}
        self.scope = ""  # prefix of new names: the layer being exported ("3.layers.1.")

    def reserve(self, names) -> None:
        """Names taken already (a table run's graph inputs, named by column): name() never hands them out."""
        for name in names:
            self._used[name] = max(self._used.get(name, 0), 1)

    def name(self, hint: str) -> str:
        base = f"{self.scope}{hint}"
        count = self._used.get(base, 0)
        name = base if count == 0 else f"{base}_{count}"
        while count and name in self._used:  # a suffixed name can be a reserved one too
            count += 1
            name = f"{base}_{count}"
        self._used[base] = count + 1
        self._used.setdefault(name, 1)
        return name

    def const(self, value: Any, hint: str = "const", dtype=None) -> str:
        """An initializer holding `value` (floats in the graph's dtype unless `dtype` says otherwise)."""
        array = np.asarray(value)
        if dtype is not None:
            array = array.astype(dtype)
        elif array.dtype.kind == "f":
            array = array.astype(self.dtype)
        elif array.dtype.kind in "iub":
            array = array.astype(np.int64)
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, outputs: int = 1, **attrs: Any):
        """Add one node; returns its output name (or a list of names when `outputs` > 1)."""
        names = [self.name(f"{hint or op_type.lower()}" + (f"_out{k}" if outputs > 1 else "")) for k in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(
            self.onnx.helper.make_node(op_type, inputs, names, name=self.name(f"{op_type}_node"), **attrs)
        )
        return names[0] if outputs == 1 else names

    # --- spellings that changed between opsets ---------------------------------------------------

    def reduce_mean(self, x: str, axes: list[int], keepdims: bool = True, hint: str = "mean") -> str:
        if self.opset >= 18:
            return self.op("ReduceMean", [x, self.const(axes, "axes")], hint, keepdims=int(keepdims))
        return self.op("ReduceMean", [x], hint, axes=list(axes), keepdims=int(keepdims))

    def reshape(self, x: str, shape: list[int], hint: str = "reshape") -> str:
        """Reshape; `-1` and (batch) `0` as in ONNX (0 copies the input's dimension)."""
        return self.op("Reshape", [x, self.const(np.asarray(shape, dtype=np.int64), "shape")], hint)

    def cast(self, x: str, dtype, hint: str = "cast") -> str:
        return self.op("Cast", [x], hint, to=self.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))

    def slice_last(self, x: str, start: int, stop: int, hint: str = "slice") -> str:
        """x[..., start:stop]."""
        return self.op(
            "Slice",
            [x, self.const([start], "starts"), self.const([stop], "ends"), self.const([-1], "axes")],
            hint,
        )
