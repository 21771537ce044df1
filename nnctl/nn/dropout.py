"""Stochastic regularization layers: identity in eval, random in training (Generator per epoch from the network)."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from nnctl.nn.layer import Layer
from nnctl.registry import LAYERS, Params


@LAYERS.register("dropout")
class Dropout(Layer):
    """Inverted dropout: y = x * mask / (1 - rate), mask ~ Bernoulli(1 - rate); identity in eval."""

    stochastic = True

    class Params(Params):
        rate: float = Field(
            0.5,
            ge=0,
            lt=1,
            description="Probability of DROPPING a unit (as in Keras and PyTorch). The original paper's p is the "
            "probability of keeping one: p = 1 - rate.",
        )

    def forward(self, x, *, training):
        if not training or self.rate == 0:
            if training:
                self._cache = None, True
            return x
        # Drawn on the host from the epoch's Generator and moved: the same masks on every device.
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.rate
        mask = self.device.to_device(keep * x.dtype.type(1 / (1 - self.rate)))  # scaled now: eval needs no rescaling
        self._cache = mask, False
        return x * mask

    def backward(self, dy):
        mask, identity = self._take_cache()
        return dy if identity else dy * mask

    def describe(self) -> str:
        return f"dropout({self.rate:g})"


@LAYERS.register("gaussian_noise")
class GaussianNoise(Layer):
    """y = x + N(0, std^2) noise in training; identity in eval. The usual choice on input layers."""

    stochastic = True

    class Params(Params):
        std: float = Field(0.1, ge=0, description="Standard deviation of the added noise (in normalized input units).")

    def forward(self, x, *, training):
        if training:
            self._cache = True
            if self.std > 0:
                noise = self.rng.standard_normal(x.shape, dtype=np.float32).astype(x.dtype, copy=False)
                return x + self.device.to_device(noise * x.dtype.type(self.std))  # host draws: same on every device
        return x

    def backward(self, dy):
        self._take_cache()
        return dy

    def describe(self) -> str:
        return f"gaussian_noise({self.std:g})"
