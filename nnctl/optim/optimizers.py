"""Optimizers over the network's flat parameter and gradient buffers.

The base class keeps the bookkeeping (buffers, step count, state for checkpoints); each optimizer
writes only its update rule, fused with `out=` into preallocated scratch so a step allocates nothing.
"""

from __future__ import annotations

import copy

import numpy as np
from pydantic import Field, model_validator

from nnctl.device import OnDevice
from nnctl.registry import OPTIMIZERS, Component, Params

# Moment entries below this are zeroed every FLUSH_EVERY steps: NumPy has no flush-to-zero mode,
# and float32 denormals (Adam moments of parameters whose gradient is exactly 0, e.g. dead ReLU
# units) make every element-wise op on them many times slower. Effect on an update: < lr*1e-30/eps.
DENORMAL_FLOOR = 1e-30
FLUSH_EVERY = 100


class OptimizerParams(Params):
    """What every optimizer accepts: gradient clipping (and `lr`, declared by each with its own default)."""

    clip_norm: float | None = Field(
        None, gt=0, description="Rescale the whole gradient so its global L2 norm is at most this (null = off)."
    )
    clip_value: float | None = Field(None, gt=0, description="Clip every gradient entry to [-v, v] (null = off).")


class Optimizer(OnDevice, Component):
    """Base: `lr`, `clip_norm` and `clip_value` come from Params (Component convention), like each
    optimizer's own hyper-parameters; `setup()` starts the step count and the (empty) state."""

    state_keys: tuple[str, ...] = ()
    # Each entry's update reads only that entry of the buffers (true of every built-in rule): then
    # data-parallel ranks can each update their own part (`part`). Declared by the class that writes
    # `_update` (see shardable); a plugin's rule is not assumed to be.
    elementwise = False

    def setup(self) -> None:
        self.t = 0  # steps taken
        self.state: dict[str, np.ndarray] = {}

    @property
    def name(self) -> str:
        return getattr(self, "registered_name", type(self).__name__.lower())

    def bind(self, params: np.ndarray, grads: np.ndarray, decay_mask: np.ndarray | None = None) -> Optimizer:
        """Attach to the flat buffers and allocate state and scratch of the same size and dtype.

        `decay_mask` is 1 for weights and 0 for biases/normalization scales: weight decay uses it.
        The buffers are on this optimizer's device (`to(device)` before binding)."""
        xp = self.xp
        self.params, self.grads = params, grads
        self.decay_mask = xp.ones_like(params) if decay_mask is None else decay_mask.astype(params.dtype)
        self.state = {key: xp.zeros_like(params) for key in self.state_keys}
        self._tmp = xp.empty_like(params)
        self._tmp2 = xp.empty_like(params)
        self._rate_of = self._rate_array = None
        return self

    def step(self, lr: float | None = None) -> None:
        """One update with learning rate `lr` (the schedule's rate for this step; default: the configured one)."""
        self.t += 1
        g = self.grads
        if self.clip_value is not None:
            self.xp.clip(g, -self.clip_value, self.clip_value, out=g)
        if self.clip_norm is not None:
            norm = float(self.xp.sqrt(g @ g))
            if norm > self.clip_norm:
                g *= g.dtype.type(self.clip_norm / norm)
        if lr is None:
            lr = self.lr
        # The kept rate without _rate's call when it has not changed (~70 ns a step).
        self._update(self.params, g, self._rate_array if lr == self._rate_of else self._rate(lr))
        if self.t % FLUSH_EVERY == 0:
            for moment in self.state.values():
                moment[self.xp.abs(moment) < DENORMAL_FLOOR] = 0

    def _rate(self, lr: float):
        """lr as a 0-d array of the parameters' dtype on the device, made anew only when the rate changes
        (never updated in place, so an `_update` may keep it): a NumPy scalar operand, and converting lr
        to one, cost a small network's step ~0.3 us more."""
        if lr != self._rate_of:
            rate = self.xp.asarray(lr, dtype=self.params.dtype)
            if hasattr(rate, "flags") and hasattr(rate.flags, "writeable"):  # NumPy: `lr *= x` in a rule raises
                rate.flags.writeable = False
            self._rate_of, self._rate_array = lr, rate
        return self._rate_array

    def _update(self, p: np.ndarray, g: np.ndarray, lr) -> None:
        """The update rule, in place on p; lr is a 0-d array of p's dtype (see `_rate`)."""
        raise NotImplementedError

    def shardable(self) -> bool:
        """Whether `part` views may update the buffers piece by piece: the class that wrote the rule says
        it is elementwise (a subclass that rewrites `_update` or `step` must say so again), and no
        clip_norm (a step that needs the whole gradient's norm)."""
        rule = next(cls for cls in type(self).__mro__ if "_update" in vars(cls))
        base_step = type(self).step is Optimizer.step
        return vars(rule).get("elementwise", False) and base_step and self.clip_norm is None

    def part(self, part: slice) -> Optimizer:
        """A view of this optimizer that steps only entries `part` of the buffers, its state and scratch
        being the same entries of this one's (a rank of a data-parallel run updates its share this way).
        Its step count starts at this one's; `join(view)` takes it back."""
        view = copy.copy(self)
        view.params, view.grads, view.decay_mask = self.params[part], self.grads[part], self.decay_mask[part]
        view.state = {key: value[part] for key, value in self.state.items()}
        view._tmp, view._tmp2 = self._tmp[part], self._tmp2[part]
        return view

    def join(self, view: Optimizer) -> None:
        self.t = view.t

    def state_dict(self) -> dict[str, np.ndarray]:
        """The state as NumPy arrays and the step count (on the CPU the live arrays: save or copy them)."""
        host = {key: self.device.to_host(value) for key, value in self.state.items()}
        return {**host, "t": np.array(self.t, dtype=np.int64)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.t = int(state["t"])
        for key in self.state_keys:
            self.state[key][...] = self.device.to_device(state[key])


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """v = momentum v + g; p -= lr v (nesterov: p -= lr (g + momentum v)); plain p -= lr g when momentum = 0."""

    elementwise = True

    class Params(OptimizerParams):
        lr: float = Field(0.01, gt=0, description="Learning rate.")
        momentum: float = Field(0.0, ge=0, lt=1, description="Momentum coefficient (0 = plain SGD).")
        nesterov: bool = Field(False, description="Nesterov momentum (needs momentum > 0).")
        weight_decay: float = Field(
            0.0,
            ge=0,
            description="Adds weight_decay * w to the weights' gradients (same as an l2 penalty of that rate).",
        )

        @model_validator(mode="after")
        def _nesterov_needs_momentum(self):
            if self.nesterov and self.momentum == 0:
                raise ValueError("nesterov: true needs momentum > 0")
            return self

    def setup(self):
        super().setup()
        self.state_keys = ("velocity",) if self.momentum > 0 else ()

    def _update(self, p, g, lr):
        tmp = self._tmp
        if self.weight_decay:
            self.xp.multiply(p, self.decay_mask, out=tmp)
            tmp *= p.dtype.type(self.weight_decay)
            g += tmp
        if self.momentum == 0:
            self.xp.multiply(g, lr, tmp)  # the output by position: the out= keyword costs ~45 ns
            p -= tmp
            return
        v = self.state["velocity"]
        mu = p.dtype.type(self.momentum)
        v *= mu
        v += g
        if self.nesterov:
            self.xp.multiply(v, mu, out=tmp)
            tmp += g
            tmp *= lr
        else:
            self.xp.multiply(v, lr, out=tmp)
        p -= tmp


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) (Kingma & Ba)."""

    elementwise = True

    state_keys = ("m", "v")

    class Params(OptimizerParams):
        lr: float = Field(0.001, gt=0, description="Learning rate.")
        beta1: float = Field(0.9, ge=0, lt=1, description="Decay of the first-moment (mean) estimate.")
        beta2: float = Field(0.999, ge=0, lt=1, description="Decay of the second-moment estimate.")
        eps: float = Field(1e-8, gt=0, description="Added to the denominator for stability.")

    def _update(self, p, g, lr):
        m, v, tmp, tmp2 = self.state["m"], self.state["v"], self._tmp, self._tmp2
        f = p.dtype.type
        b1, b2 = self.beta1, self.beta2
        m *= f(b1)
        self.xp.multiply(g, f(1 - b1), out=tmp)
        m += tmp
        v *= f(b2)
        self.xp.multiply(g, g, out=tmp)
        tmp *= f(1 - b2)
        v += tmp
        bias1 = 1 - b1**self.t
        bias2 = 1 - b2**self.t
        self.xp.sqrt(v, out=tmp)
        tmp *= f(1 / np.sqrt(bias2))
        tmp += f(self.eps)
        self.xp.divide(m, tmp, out=tmp2)
        tmp2 *= lr / f(bias1)  # float32 / float32 on NumPy and CuPy alike
        p -= tmp2


@OPTIMIZERS.register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): w -= lr * weight_decay * w, then the Adam step."""

    elementwise = True

    class Params(Adam.Params):
        weight_decay: float = Field(
            0.01, ge=0, description="Decoupled decay of the weights (not biases) per step, times lr."
        )

    def _update(self, p, g, lr):
        if self.weight_decay:
            tmp = self._tmp
            self.xp.multiply(p, self.decay_mask, out=tmp)
            tmp *= lr * p.dtype.type(self.weight_decay)
            p -= tmp
        super()._update(p, g, lr)


@OPTIMIZERS.register("rmsprop")
class RMSprop(Optimizer):
    """v = rho v + (1 - rho) g^2; p -= lr g / (sqrt(v) + eps) (Hinton's lecture 6e)."""

    elementwise = True

    state_keys = ("v",)

    class Params(OptimizerParams):
        lr: float = Field(0.001, gt=0, description="Learning rate.")
        rho: float = Field(0.9, ge=0, lt=1, description="Decay of the squared-gradient average.")
        eps: float = Field(1e-8, gt=0, description="Added to the denominator for stability.")

    def _update(self, p, g, lr):
        v, tmp, tmp2 = self.state["v"], self._tmp, self._tmp2
        f = p.dtype.type
        v *= f(self.rho)
        self.xp.multiply(g, g, out=tmp)
        tmp *= f(1 - self.rho)
        v += tmp
        self.xp.sqrt(v, out=tmp)
        tmp += f(self.eps)
        self.xp.divide(g, tmp, out=tmp2)
        tmp2 *= lr
        p -= tmp2


@OPTIMIZERS.register("adagrad")
class Adagrad(Optimizer):
    """s += g^2; p -= lr g / (sqrt(s) + eps): each parameter's rate shrinks with its gradient history (Duchi 2011)."""

    elementwise = True

    state_keys = ("s",)

    class Params(OptimizerParams):
        lr: float = Field(0.01, gt=0, description="Learning rate.")
        eps: float = Field(1e-10, gt=0, description="Added to the denominator for stability.")

    def _update(self, p, g, lr):
        s, tmp, tmp2 = self.state["s"], self._tmp, self._tmp2
        self.xp.multiply(g, g, out=tmp)
        s += tmp
        self.xp.sqrt(s, out=tmp)
        tmp += p.dtype.type(self.eps)
        self.xp.divide(g, tmp, out=tmp2)
        tmp2 *= lr
        p -= tmp2
