"""Fully connected layer."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from nnctl import batchsplit
from nnctl.nn import elementwise
from nnctl.nn.activations import ACTIVATION_NAMES
from nnctl.nn.init import Init, initialize
from nnctl.nn.layer import Layer, require_flat
from nnctl.registry import LAYERS, Params

# Up to this many outputs a batch's bias goes through a kept buffer of bias rows on NumPy (Dense._bias_rows_for).
SMALL_OUTPUT = 4096


@LAYERS.register("dense")
class Dense(Layer):
    """y = act(x @ weight + bias), weight stored (fan_in, units) so the forward GEMM needs no transpose."""

    class Params(Params):
        units: int = Field(..., gt=0, description="Number of output units.")
        activation: Literal[ACTIVATION_NAMES] | None = Field(  # type: ignore[valid-type]
            None, description="Shorthand for an activation layer right after this one (null = none)."
        )
        use_bias: bool = Field(True, description="Add a learned bias.")
        init: Init = Field(
            "glorot_uniform",
            description="Weight initialiser: glorot_* (tanh/sigmoid), he_* (ReLU), normal (std 0.05), zeros, "
            "playground (uniform in [-0.5, 0.5], the TensorFlow Playground's).",
        )
        bias_init: float = Field(0.0, description="Initial value of every bias (the TensorFlow Playground uses 0.1).")

    def setup(self):
        self._ones = None
        self._rows = None  # (N, units): the bias repeated over a small batch's rows (_bias_rows_for)
        act = self.activation
        self.activation = LAYERS.get(act).component() if act and act != "linear" else None

    def _build(self, input_shape, rng):
        fan_in = require_flat(self, input_shape)
        self._param("weight", initialize(self.init, (fan_in, self.units), fan_in, self.units, rng))
        if self.use_bias:
            self._param("bias", np.full(self.units, self.bias_init))
        if self.activation is not None:
            self.activation.build((self.units,), rng, self.dtype, self.device)
        return (self.units,)

    def _bind_params(self) -> None:
        # Kept as attributes: the step looks them up 12 times, ~25 ns a dict lookup.
        self._weight, self._weight_grad = self.params["weight"], self.grads["weight"]
        self._weight_t = self._weight.T  # (units, fan_in), for dx = dy @ weight.T
        self._bias, self._bias_grad = self.params.get("bias"), self.grads.get("bias")
        # The kept rows and ones are made for a batch size only: new parameters (a rebuild, another dtype) new ones.
        self._rows = self._ones = None

    def _split_work(self, n: int) -> tuple[int, int]:
        """(multiply-adds of the forward GEMM for n samples, the least worth splitting over threads). Not
        `split_work`: a dense layer alone never turns splitting on (batchsplit.network_splits), an MLP
        keeps its multi-threaded BLAS; in a CNN that split its conv layers it splits too."""
        return n * self.params["weight"].size, batchsplit.MIN_PRODUCT

    # The split paths live in their own methods: closures in forward/backward would make their locals
    # cells, which a tiny network's unsplit step pays for in every call.
    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        if batchsplit.on and batchsplit.worth_splitting(self, len(x), self._split_work):
            z = self._forward_split(x)
        else:
            # The array's own dot (NumPy and CuPy): np.dot's dispatch costs a tiny network's step 0.2 us a call.
            z = x.dot(self._weight)  # (N, units)
        bias = self._bias
        if bias is not None:  # in place: z is a fresh product
            rows = self._rows
            if rows is None or len(rows) != len(z):
                rows = self._rows = self._bias_rows_for(z)
            if rows is None:
                elementwise.add_bias_(self.xp, z, bias)
            else:
                rows[...] = bias
                self.xp.add(z, rows, z)
        if training:
            self._cache = x
        activation = self.activation
        return z if activation is None else activation.forward(z, training=training)

    def _bias_rows_for(self, z: np.ndarray) -> np.ndarray | None:
        """A buffer of z's shape for the bias rows of a small NumPy batch, or None (a large batch, CuPy): the
        bias copied into it and added as a same-shape array costs a small batch ~0.25 us less than a
        broadcasting add, which sets up NumPy's iterator (tiny network, three layers: 14.0 -> 13.3 us/step)."""
        return self.xp.empty_like(z) if self.xp is np and z.size <= SMALL_OUTPUT else None

    def _forward_split(self, x: np.ndarray) -> np.ndarray:
        """x @ weight with the rows over the threads."""
        weight = self._weight
        z = self.xp.empty((len(x), self.units), dtype=self.dtype)
        batchsplit.run(len(x), lambda _, a, b: x[a:b].dot(weight, out=z[a:b]))
        return z

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x, self._cache = self._cache, None  # _take_cache inline, as the gradients below: a call costs ~70 ns
        if x is None:
            raise self._no_forward()
        activation = self.activation
        if activation is not None:
            dy = activation.backward(dy)
        needs_dx = self.needs_input_grad
        if needs_dx and batchsplit.on and batchsplit.worth_splitting(self, len(dy), self._split_work):
            return self._backward_split(x, dy)
        # Outputs passed by position: the `out=` keyword costs ~45 ns a call.
        x.T.dot(dy, self._weight_grad)
        if self._bias is not None:
            ones = self._ones
            if ones is None or len(ones) != len(dy):
                ones = self._ones_for(dy)
            ones.dot(dy, self._bias_grad)
        return dy.dot(self._weight_t) if needs_dx else None  # type: ignore[return-value]

    def _backward_split(self, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """dx and the weight gradients: the two GEMMs side by side."""
        weight_t = self._weight_t
        return batchsplit.together([lambda: dy.dot(weight_t), lambda: self._weight_grads(x, dy)])[0]

    def _weight_grads(self, x, dy) -> None:
        x.T.dot(dy, self._weight_grad)
        if self._bias is not None:
            self._ones_for(dy).dot(dy, self._bias_grad)

    def _ones_for(self, dy):
        """The kept ones vector for dy's batch size (made anew when it changes): bias gradients as a GEMV,
        ones @ dy, are faster than np.sum on small batches."""
        ones = self._ones
        if ones is None or len(ones) != len(dy):
            ones = self._ones = self.xp.ones(len(dy), dtype=dy.dtype)
        return ones

    def describe(self) -> str:
        return f"dense({self.units}{', ' + self.activation.name if self.activation else ''})"
