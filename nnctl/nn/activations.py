"""Activation functions as parameter-free layers; `dense` also uses them through `activation:`."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from nnctl.nn import elementwise
from nnctl.nn.layer import Layer
from nnctl.registry import LAYERS, Params


class Activation(Layer):
    """Element-wise y = f(x); subclasses give f and df/dx (from x and/or y)."""

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        y = self.f(x)
        if training:
            self._cache = (x, y)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x, y = self._take_cache()
        return self.df(x, y, dy)

    def f(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def df(self, x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@LAYERS.register("linear")
class Linear(Activation):
    """y = x (identity; the output activation of a regression network)."""

    def f(self, x):
        return x

    def df(self, x, y, dy):
        return dy


@LAYERS.register("sigmoid")
class Sigmoid(Activation):
    """y = 1 / (1 + exp(-x)); saturates for large |x| and its slope is at most 0.25 (vanishing gradients)."""

    def f(self, x):
        # Written through tanh: never overflows, unlike 1 / (1 + exp(-x)) for large negative x.
        y = self.xp.tanh(x * 0.5)
        y *= 0.5
        y += 0.5
        return y

    def df(self, x, y, dy):
        return dy * y * (1 - y)


@LAYERS.register("tanh")
class Tanh(Activation):
    """y = tanh(x); zero-centred, but saturates like sigmoid (slope at most 1)."""

    def _build(self, input_shape, rng):
        # The 1 of 1 - y^2 as a 0-d array: a Python or NumPy scalar operand costs the ufunc ~0.2 us more.
        self._one = self.xp.ones((), dtype=self.dtype)
        return input_shape

    # forward and backward written out, caching y alone: f/df's calls cost a tiny network's step ~0.15 us.
    def forward(self, x, *, training):
        y = self.xp.tanh(x)
        if training:
            self._cache = y
        return y

    def backward(self, dy):
        y, self._cache = self._cache, None
        if y is None:
            raise self._no_forward()
        d = y * y
        self.xp.subtract(self._one, d, d)  # the output by position: the out= keyword costs ~40 ns
        d *= dy
        return d


@LAYERS.register("relu")
class ReLU(Activation):
    """y = max(x, 0); no saturation for x > 0, but units stuck at x < 0 stop learning ("dying ReLU")."""

    def f(self, x):
        return elementwise.relu(self.xp, x)

    def df(self, x, y, dy):
        return dy * (y > 0)


@LAYERS.register("leaky_relu")
class LeakyReLU(Activation):
    """y = x if x > 0 else alpha * x; a small slope keeps negative units alive."""

    class Params(Params):
        alpha: float = Field(0.01, ge=0, lt=1, description="Slope for x < 0.")

    def f(self, x):
        return self.xp.where(x > 0, x, x * self.alpha)

    def df(self, x, y, dy):
        return self.xp.where(x > 0, dy, dy * self.alpha)


@LAYERS.register("elu")
class ELU(Activation):
    """y = x if x > 0 else alpha * (exp(x) - 1); smooth, negative outputs push mean activations to 0."""

    class Params(Params):
        alpha: float = Field(1.0, gt=0, description="Value approached for x -> -inf is -alpha.")

    def f(self, x):
        return self.xp.where(x > 0, x, self.alpha * self.xp.expm1(self.xp.minimum(x, 0)))

    def df(self, x, y, dy):
        return self.xp.where(x > 0, dy, dy * (y + self.alpha))


_GELU_C = np.sqrt(2.0 / np.pi)


@LAYERS.register("gelu")
class GELU(Activation):
    """y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the tanh form of x * Phi(x) (Hendrycks & Gimpel)."""

    def forward(self, x, *, training):
        c = x.dtype.type(_GELU_C)
        t = self.xp.tanh(c * (x + 0.044715 * x * x * x))
        y = 0.5 * x * (1 + t)
        if training:
            self._cache = (x, t)
        return y

    def backward(self, dy):
        x, t = self._take_cache()
        c = x.dtype.type(_GELU_C)
        dt = c * (1 + 3 * 0.044715 * x * x) * (1 - t * t)
        return dy * (0.5 * (1 + t) + 0.5 * x * dt)


@LAYERS.register("softmax")
class Softmax(Activation):
    """y_i = exp(x_i) / sum_j exp(x_j) over the last axis (probabilities). Not before cross_entropy, which fuses it."""

    def f(self, x):
        z = x - x.max(axis=-1, keepdims=True)
        self.xp.exp(z, out=z)
        z /= z.sum(axis=-1, keepdims=True)
        return z

    def df(self, x, y, dy):
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


ACTIVATION_NAMES = ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "softmax")
