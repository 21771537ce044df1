"""The TensorFlow Playground's update rule, for configs that reproduce a Playground experiment exactly.

The Playground (`nn.ts`, updateWeights) takes a plain gradient step on the batch-mean gradient,
then a separate regularization step on the weights (never the biases), with the derivative taken
at the weight before the gradient step:

    w1 = w0 - lr * g
    w2 = w1 - lr * rate * dReg(w0)        dReg = sign(w) for L1, w for L2
    L1 only: if w1 and w2 have opposite signs, the weight is set to 0 and never updated again.

For L2 this is the same as nnctl's `sgd` with an `l2` regularizer of the same rate; for L1 the
zero clamp (and the dead weights it leaves) is the Playground's own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nnctl.optim.optimizers import Optimizer, OptimizerParams
from nnctl.registry import OPTIMIZERS


@OPTIMIZERS.register("playground_sgd")
class PlaygroundSGD(Optimizer):
    """p -= lr g; then weights -= lr rate dReg(w before the step); an L1 step crossing 0 leaves the weight at 0 for good."""

    class Params(OptimizerParams):
        lr: float = Field(0.03, gt=0, description="Learning rate (the Playground's default 0.03).")
        regularization: Literal["none", "l1", "l2"] = Field(
            "none", description="The Playground's regularization: none, l1 (sign(w)) or l2 (w), weights only."
        )
        regularization_rate: float = Field(0.0, ge=0, description="The Playground's regularization rate.")

    def setup(self):
        super().setup()
        # Weights an L1 step set to 0 ("dead links" in the Playground): 1.0 where dead; kept in checkpoints.
        self.state_keys = ("dead",) if self.regularization == "l1" else ()

    def _update(self, p, g, lr):
        tmp, reg = self._tmp, self._tmp2
        regularize = self.regularization != "none" and self.regularization_rate > 0
        if regularize:  # dReg at the weights before the gradient step; biases have mask 0
            if self.regularization == "l1":
                self.xp.sign(p, out=reg)
            else:
                self.xp.copyto(reg, p)
            reg *= self.decay_mask
            reg *= lr * p.dtype.type(self.regularization_rate)
        self.xp.multiply(g, lr, out=tmp)
        p -= tmp
        if not regularize:
            if self.regularization == "l1":
                p[self.state["dead"] > 0] = 0
            return
        if self.regularization == "l2":
            p -= reg
            return
        self.xp.subtract(p, reg, out=tmp)
        dead = self.state["dead"]
        dead[(p * tmp) < 0] = 1  # the regularization step crossed 0
        self.xp.copyto(p, tmp)
        p[dead > 0] = 0
