"""The TensorFlow Playground's loss, for configs that reproduce a Playground experiment exactly.

The Playground's output node is tanh for classification (labels -1 / +1) and linear for regression,
and it trains on the square error 0.5 (out - t)^2 (its `nn.Errors.SQUARE`). nnctl's own choices
differ (logits with binary cross-entropy; mse without the 0.5), so `nnctl playground URL` writes
this loss. Its weight initialisation is `init: playground` with `bias_init: 0.1` on dense layers,
its update rule the optimizer `playground_sgd` (nnctl/optim/playground.py).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from nnctl.errors import ConfigError
from nnctl.nn.losses import Loss
from nnctl.registry import LOSSES, Params


@LOSSES.register("playground_mse")
class PlaygroundMSE(Loss):
    """L = mean(0.5 (a - t)^2), the Playground's square error; output tanh: a = tanh(z), t = -1/+1 from 2 classes."""

    class Params(Params):
        output: Literal["tanh", "linear"] = Field(
            "tanh",
            description="tanh: classification, one output unit, a = tanh(z) against labels mapped to -1/+1, "
            "predicted class sign(a) (the Playground's classifier); linear: regression, a = z.",
        )

    def setup(self):
        self.task = "classification" if self.output == "tanh" else "regression"

    def check(self, output_shape, task, num_classes, targets):
        if self.output == "tanh" and (task != "classification" or num_classes != 2 or output_shape != (1,)):
            raise ConfigError(
                "playground_mse with output: tanh is the Playground's classifier: it needs 2 classes and 1 output "
                f"unit; the data are {task} ({num_classes or targets} {'classes' if num_classes else 'targets'}) and "
                f"the network outputs shape {output_shape}. For regression use output: linear."
            )
        super().check(output_shape, task, num_classes, targets)

    def forward(self, out, y):
        if self.output == "tanh":
            a = self.xp.tanh(out)
            t = 2 * y.astype(out.dtype) - 1  # class 0 -> -1, class 1 -> +1
            if t.ndim == out.ndim - 1:
                t = t[:, None]
        else:
            a, t = out, y
        diff = a - t
        self._cache = (diff, a)
        flat = diff.reshape(-1)
        return 0.5 * float(flat @ flat) / flat.size

    def backward(self):
        diff, a = self._take_cache()
        d = diff * diff.dtype.type(1.0 / diff.size)  # d L / d a
        if self.output == "tanh":
            d *= 1 - a * a  # tanh'(z) = 1 - tanh(z)^2
        return d

    def probabilities(self, out):
        p1 = 0.5 * self.xp.tanh(out[:, 0]) + 0.5  # a in [-1, 1] read as P(class 1)
        return self.xp.stack([1 - p1, p1], axis=1)

    def predict(self, out):
        if self.output == "tanh":
            return (out[:, 0] > 0).astype(np.int64)
        return out
