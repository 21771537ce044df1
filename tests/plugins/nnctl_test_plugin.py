"""A custom layer registered from a config's `plugins:` list (what a user's own module looks like).

Parameters are declared once, in Params; the registry validates a config's values with it and the
layer reads them as attributes (self.init_scale). No __init__ to write; state derived from the
parameters would go in `setup()`. Array functions come from the layer's device (`self.xp`: NumPy on
the CPU, CuPy on a GPU), never from `numpy` itself; `np` is for host values such as the initial scale.
"""

import numpy as np
from pydantic import Field

from nnctl.nn.layer import Layer
from nnctl.registry import LAYERS, Params


@LAYERS.register("scaled_tanh")
class ScaledTanh(Layer):
    """y = scale * tanh(x / scale) with a learned per-feature scale."""

    class Params(Params):
        init_scale: float = Field(2.0, gt=0, description="Initial scale of every feature.")

    def _build(self, input_shape, rng):
        self._param("scale", np.full(input_shape, self.init_scale))
        return input_shape

    def forward(self, x, *, training):
        s = self.params["scale"]
        t = self.xp.tanh(x / s)
        if training:
            self._cache = (x, t)
        return s * t

    def backward(self, dy):
        x, t = self._take_cache()
        s = self.params["scale"]
        dt = 1 - t * t
        # d/ds [s tanh(x/s)] = tanh(x/s) - (x/s) (1 - tanh^2)
        self.xp.sum(dy * (t - (x / s) * dt), axis=0, out=self.grads["scale"])
        return dy * dt


# Its ONNX exporter, registered the way a plugin does it (nnctl.export's registry imports nothing heavy).
from nnctl.export import register_exporter  # noqa: E402


@register_exporter("scaled_tanh")
def _export_scaled_tanh(layer, g, x):
    s = g.const(layer.params["scale"], "scale")
    return g.op("Mul", [g.op("Tanh", [g.op("Div", [x, s])]), s])
