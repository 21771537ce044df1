"""Recurrent layers over sequences (N, T, F): simple_rnn, lstm, gru; BPTT vectorised over the batch.

Conventions (PyTorch's, so weights carry over and the parity test in tests/nn/test_recurrent.py is exact):

- Weights are stored (fan_in, gates * units), so `x @ weight_ih` needs no transpose; torch's
  `weight_ih_l0` is our `weight_ih.T`. Gate blocks follow PyTorch's order: lstm [i, f, g, o],
  gru [r, z, n].
- gru applies the reset gate after the recurrent product (PyTorch, cuDNN, Keras `reset_after`):
  n = tanh(x W_in + b_in + r * (h W_hn + b_hn)),  h' = (1 - z) * n + z * h.
  Its biases are `bias` (3 units; torch's b_ih + [b_hr, b_hz, 0]) and `bias_hn` (units; torch's b_hn),
  the two that are not redundant.
- lstm: c' = f * c + i * g, h' = o * tanh(c'); one `bias` (torch's b_ih + b_hh), forget block starting at 1.
- The initial state is zero. bidirectional runs a second set of weights (`*_reverse`) from t = T-1 down to 0
  and concatenates [forward, backward] features; many-to-one then takes the forward direction's state after
  t = T-1 and the backward one's after t = 0 (torch's h_n).

Inside, sequences are time-major (T, N, .): every step reads and writes contiguous (N, .) blocks.
The input projection of all steps is one GEMM before the loop, and its gradient (and those of
weight_ih, weight_hh and the biases) one GEMM each after the backward loop; only the small
recurrent GEMM and fused element-wise work happen per step.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from nnctl.errors import ConfigError
from nnctl.nn.init import Init, initialize
from nnctl.nn.layer import Layer
from nnctl.registry import LAYERS, Params

RecurrentInit = Literal["orthogonal", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "normal", "zeros"]


class RecurrentParams(Params):
    units: int = Field(..., gt=0, description="Size of the hidden state (per direction).")
    return_sequences: bool = Field(
        False,
        description="true: output the state at every step, shape (T, units) (many-to-many); "
        "false: only the final state, shape (units,) (many-to-one).",
    )
    bidirectional: bool = Field(
        False,
        description="Also read the sequence backwards with a second set of weights and concatenate both "
        "directions' features (2 * units).",
    )
    init: Init = Field("glorot_uniform", description="Initialiser of the input weights weight_ih.")
    recurrent_init: RecurrentInit = Field(
        "orthogonal",
        description="Initialiser of the recurrent weights weight_hh; orthogonal (per gate block) keeps the "
        "state's norm over many steps at the start of training.",
    )


def orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random (n, n) orthogonal matrix (QR of a Gaussian, signs fixed so it is uniformly distributed)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _sigmoid_(a: np.ndarray) -> np.ndarray:
    """In place: a = 1 / (1 + exp(-a)), through tanh so it never overflows."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


class _Recurrent(Layer):
    """Shared machinery: parameters per direction, time-major layout, the batched GEMMs around the scan.

    A cell implements `_scan(xp, sfx, reverse) -> (states, cache)` and
    `_scan_back(cache, states, dseq, dlast, sfx, reverse) -> (dxp, dgh)`: the gradients of the input
    projection (T, N, G) and of the recurrent product h @ weight_hh (T, N, G), from which the weight
    gradients follow as single GEMMs. `states` is (T + 1, N, H): forward, states[t] feeds step t and
    states[t + 1] is its output; reverse, states[t + 1] feeds step t and states[t] is its output.
    """

    gates = 1
    Params = RecurrentParams

    def setup(self):
        self.directions = [("", False)] + ([("_reverse", True)] if self.bidirectional else [])
        self._ones = np.ones(0)
        self._workspace: dict[tuple, np.ndarray] = {}
        self._phase = "train"

    # --- build -------------------------------------------------------------------------------

    def _build(self, input_shape, rng):
        if len(input_shape) != 2:
            hint = (
                "token ids (T,) need an `embedding` layer first"
                if len(input_shape) == 1
                else "recurrent layers read sequences of feature vectors"
            )
            raise ConfigError(
                f"layer '{self.name}' expects sequences of shape (T, F) (time steps, features) but gets inputs of "
                f"shape {input_shape}; {hint}."
            )
        features = input_shape[1]
        h, g = self.units, self.gates * self.units
        for sfx, _ in self.directions:
            self._param("weight_ih" + sfx, initialize(self.init, (features, g), features, g, rng))
            if self.recurrent_init == "orthogonal":
                w_hh = np.concatenate([orthogonal(h, rng) for _ in range(self.gates)], axis=1)
            else:
                w_hh = initialize(self.recurrent_init, (h, g), h, g, rng)
            self._param("weight_hh" + sfx, w_hh)
            self._param("bias" + sfx, self._initial_bias())
            self._extra_params(sfx)
        self._constants()
        width = h * len(self.directions)
        return (input_shape[0], width) if self.return_sequences else (width,)

    def _initial_bias(self) -> np.ndarray:
        return np.zeros(self.gates * self.units)

    def _extra_params(self, sfx: str) -> None:
        pass

    def _constants(self) -> None:
        pass

    # --- forward / backward ------------------------------------------------------------------

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        n, t, f = x.shape
        xt = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(t * n, f)  # (T*N, F), time-major rows
        states, caches = [], []
        for sfx, reverse in self.directions:
            self._phase = ("train" if training else "eval") + sfx
            xp = self._buf("xp", (t * n, self.gates * self.units), x.dtype)
            np.dot(xt, self.params["weight_ih" + sfx], out=xp)  # (T*N, G): the input part of every step at once
            xp += self.params["bias" + sfx]
            s, cache = self._scan(xp.reshape(t, n, -1), sfx, reverse)
            states.append(s)
            caches.append(cache)
        h = self.units
        if self.return_sequences:
            y = np.empty((n, t, h * len(states)), dtype=x.dtype)
            for k, (s, (_, reverse)) in enumerate(zip(states, self.directions, strict=True)):
                y[:, :, k * h : (k + 1) * h] = (s[:-1] if reverse else s[1:]).transpose(1, 0, 2)
        else:
            y = np.empty((n, h * len(states)), dtype=x.dtype)
            for k, (s, (_, reverse)) in enumerate(zip(states, self.directions, strict=True)):
                y[:, k * h : (k + 1) * h] = s[0] if reverse else s[-1]
        if training:
            self._cache = (xt, x.shape, states, caches)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xt, (n, t, f), states, caches = self._take_cache()
        h = self.units
        if len(self._ones) != t * n:
            self._ones = np.ones(t * n, dtype=dy.dtype)
        dxt = None
        for k, ((sfx, reverse), s, cache) in enumerate(zip(self.directions, states, caches, strict=True)):
            dyk = dy[..., k * h : (k + 1) * h]
            dseq, dlast = (dyk.transpose(1, 0, 2), None) if self.return_sequences else (None, dyk)
            self._phase = "backward" + sfx
            dxp, dgh = self._scan_back(cache, s, dseq, dlast, sfx, reverse)
            dxp = dxp.reshape(t * n, -1)  # (T*N, G)
            dgh = dgh.reshape(t * n, -1)
            prev = (s[1:] if reverse else s[:-1]).reshape(t * n, h)  # the state each step read
            np.dot(xt.T, dxp, out=self.grads["weight_ih" + sfx])
            np.dot(prev.T, dgh, out=self.grads["weight_hh" + sfx])
            np.dot(self._ones, dxp, out=self.grads["bias" + sfx])
            self._extra_grads(sfx, dgh)
            if self.needs_input_grad:
                part = np.dot(dxp, self.params["weight_ih" + sfx].T)  # (T*N, F)
                dxt = part if dxt is None else np.add(dxt, part, out=dxt)
        if not self.needs_input_grad:
            return None  # type: ignore[return-value]
        return np.ascontiguousarray(dxt.reshape(t, n, f).transpose(1, 0, 2))

    def _extra_grads(self, sfx: str, dgh: np.ndarray) -> None:
        pass

    # --- helpers for the cells ---------------------------------------------------------------

    def _buf(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A scratch array kept between calls (uninitialised). Fresh multi-megabyte arrays cost a page fault per
        4 KiB on first touch, which made each step several times slower; training forward, eval forward and
        backward use separate ones, so an eval pass never overwrites what a pending backward needs."""
        key = (self._phase, name, shape, np.dtype(dtype).str)
        buf = self._workspace.get(key)
        if buf is None:
            if len(self._workspace) > 64:  # many batch sizes seen: start over rather than grow
                self._workspace.clear()
            buf = self._workspace[key] = np.empty(shape, dtype=dtype)
        return buf

    def _new_states(self, t: int, n: int, reverse: bool, dtype, name: str = "s") -> np.ndarray:
        s = self._buf(name, (t + 1, n, self.units), dtype)
        s[t if reverse else 0] = 0  # zero initial state
        return s

    @staticmethod
    def _order(t: int, reverse: bool) -> range:
        return range(t - 1, -1, -1) if reverse else range(t)

    @staticmethod
    def _start_grad(dlast, n: int, h: int, dtype) -> np.ndarray:
        """Gradient flowing into the final state: the upstream one (many-to-one) or zero."""
        return np.zeros((n, h), dtype=dtype) if dlast is None else np.array(dlast, dtype=dtype, order="C")

    def describe(self) -> str:
        extra = ", sequences" if self.return_sequences else ""
        extra += ", bidirectional" if self.bidirectional else ""
        return f"{self.name}({self.units}{extra})"

    def _scan(self, xp, sfx, reverse):
        raise NotImplementedError

    def _scan_back(self, cache, s, dseq, dlast, sfx, reverse):
        raise NotImplementedError


@LAYERS.register("simple_rnn")
class SimpleRNN(_Recurrent):
    """h_t = act(x_t @ weight_ih + h_{t-1} @ weight_hh + bias), act tanh or relu (Elman network)."""

    class Params(RecurrentParams):
        activation: Literal["tanh", "relu"] = Field("tanh", description="Non-linearity of the state update.")

    def _scan(self, xp, sfx, reverse):
        t, n, _ = xp.shape
        w = self.params["weight_hh" + sfx]
        s = self._new_states(t, n, reverse, xp.dtype)
        r = int(reverse)
        for k in self._order(t, reverse):
            new = s[k + 1 - r]
            np.dot(s[k + r], w, out=new)
            new += xp[k]
            if self.activation == "tanh":
                np.tanh(new, out=new)
            else:
                np.maximum(new, 0, out=new)
        return s, None

    def _scan_back(self, cache, s, dseq, dlast, sfx, reverse):
        t, n, h = s.shape[0] - 1, s.shape[1], self.units
        w = self.params["weight_hh" + sfx]
        d = self._buf("d", (t, n, h), s.dtype)  # d loss / d pre-activation, per step
        dh = self._start_grad(dlast, n, h, s.dtype)
        r = int(reverse)
        order = self._order(t, not reverse)
        for k in order:
            if dseq is not None:
                dh += dseq[k]
            out, da = s[k + 1 - r], d[k]
            if self.activation == "tanh":
                np.multiply(out, out, out=da)
                np.subtract(1, da, out=da)
                da *= dh
            else:
                np.multiply(dh, out > 0, out=da)
            if k != order[-1]:  # the initial state is a constant: no gradient needed for it
                np.dot(da, w.T, out=dh)
        return d, d

    def describe(self) -> str:
        return super().describe().replace("(", f"({self.activation}, ", 1)


@LAYERS.register("lstm")
class LSTM(_Recurrent):
    """[i, f, g, o] = [sig, sig, tanh, sig](x_t W_ih + h W_hh + b); c' = f c + i g; h' = o tanh(c')."""

    gates = 4

    class Params(RecurrentParams):
        forget_bias: float = Field(
            1.0, description="Initial bias of the forget gate; 1 keeps the cell's memory early in training."
        )

    def _initial_bias(self):
        b = np.zeros(4 * self.units)
        b[self.units : 2 * self.units] = self.forget_bias
        return b

    def _constants(self):
        # All four gate activations as one affine-tanh-affine pass: sigmoid(a) = 0.5 tanh(a / 2) + 0.5.
        h = self.units
        sig = np.ones(4 * h, dtype=bool)
        sig[2 * h : 3 * h] = False  # the g block is tanh
        self._scale = np.where(sig, 0.5, 1.0).astype(self.dtype)  # before and after the tanh
        self._shift = np.where(sig, 0.5, 0.0).astype(self.dtype)
        # activation derivative from its output u: u (q - u) + p = u (1 - u) for sigmoid, 1 - u^2 for tanh
        self._q = np.where(sig, 1.0, 0.0).astype(self.dtype)
        self._p = np.where(sig, 0.0, 1.0).astype(self.dtype)

    def _scan(self, xp, sfx, reverse):
        t, n, _ = xp.shape
        h = self.units
        w = self.params["weight_hh" + sfx]
        s = self._new_states(t, n, reverse, xp.dtype)
        c = self._new_states(t, n, reverse, xp.dtype, "c")  # cell states, same layout
        acts = self._buf("acts", (t, n, 4 * h), xp.dtype)  # gate outputs i, f, g, o
        tc = self._buf("tc", (t, n, h), xp.dtype)  # tanh(c)
        ig = np.empty((n, h), dtype=xp.dtype)
        r = int(reverse)
        for k in self._order(t, reverse):
            a = acts[k]
            np.dot(s[k + r], w, out=a)
            a += xp[k]
            a *= self._scale
            np.tanh(a, out=a)
            a *= self._scale
            a += self._shift
            c_new = c[k + 1 - r]
            np.multiply(a[:, h : 2 * h], c[k + r], out=c_new)  # f * c
            np.multiply(a[:, :h], a[:, 2 * h : 3 * h], out=ig)  # i * g
            c_new += ig
            np.tanh(c_new, out=tc[k])
            np.multiply(a[:, 3 * h :], tc[k], out=s[k + 1 - r])  # o * tanh(c)
        return s, (c, acts, tc)

    def _scan_back(self, cache, s, dseq, dlast, sfx, reverse):
        c, acts, tc = cache
        t, n, h = s.shape[0] - 1, s.shape[1], self.units
        w = self.params["weight_hh" + sfx]
        d = self._buf("d", (t, n, 4 * h), s.dtype)  # d loss / d gate pre-activations
        dh = self._start_grad(dlast, n, h, s.dtype)
        dc = np.zeros((n, h), dtype=s.dtype)
        tmp = np.empty((n, h), dtype=s.dtype)
        deriv = np.empty((n, 4 * h), dtype=s.dtype)
        r = int(reverse)
        order = self._order(t, not reverse)
        for k in order:
            if dseq is not None:
                dh += dseq[k]
            a, tck, dk = acts[k], tc[k], d[k]
            # dc += dh * o * (1 - tanh(c)^2)
            np.multiply(tck, tck, out=tmp)
            np.subtract(1, tmp, out=tmp)
            tmp *= a[:, 3 * h :]
            tmp *= dh
            dc += tmp
            np.multiply(dc, a[:, 2 * h : 3 * h], out=dk[:, :h])  # d i
            np.multiply(dc, c[k + r], out=dk[:, h : 2 * h])  # d f
            np.multiply(dc, a[:, :h], out=dk[:, 2 * h : 3 * h])  # d g
            np.multiply(dh, tck, out=dk[:, 3 * h :])  # d o
            np.subtract(self._q, a, out=deriv)
            deriv *= a
            deriv += self._p
            dk *= deriv
            if k != order[-1]:
                dc *= a[:, h : 2 * h]  # through c = f * c_prev + ...
                np.dot(dk, w.T, out=dh)
        return d, d


@LAYERS.register("gru")
class GRU(_Recurrent):
    """[r, z] = sig(x W_i + h W_h + b); n = tanh(x W_in + b_in + r (h W_hn + b_hn)); h' = (1 - z) n + z h."""

    gates = 3

    def _extra_params(self, sfx):
        self._param("bias_hn" + sfx, np.zeros(self.units))

    def _scan(self, xp, sfx, reverse):
        t, n, _ = xp.shape
        h = self.units
        w = self.params["weight_hh" + sfx]
        b_hn = self.params["bias_hn" + sfx]
        s = self._new_states(t, n, reverse, xp.dtype)
        rz = self._buf("rz", (t, n, 2 * h), xp.dtype)  # reset and update gates
        nn = self._buf("nn", (t, n, h), xp.dtype)  # candidate states
        ghn = self._buf("ghn", (t, n, h), xp.dtype)  # h W_hn + b_hn, what the reset gate scales
        gh = np.empty((n, 3 * h), dtype=xp.dtype)
        r = int(reverse)
        for k in self._order(t, reverse):
            prev, new, x_k = s[k + r], s[k + 1 - r], xp[k]
            np.dot(prev, w, out=gh)
            g = rz[k]
            np.add(x_k[:, : 2 * h], gh[:, : 2 * h], out=g)
            _sigmoid_(g)
            np.add(gh[:, 2 * h :], b_hn, out=ghn[k])
            cand = nn[k]
            np.multiply(g[:, :h], ghn[k], out=cand)
            cand += x_k[:, 2 * h :]
            np.tanh(cand, out=cand)
            np.subtract(prev, cand, out=new)  # h' = n + z (h - n)
            new *= g[:, h:]
            new += cand
        return s, (rz, nn, ghn)

    def _scan_back(self, cache, s, dseq, dlast, sfx, reverse):
        rz, nn, ghn = cache
        t, n, h = s.shape[0] - 1, s.shape[1], self.units
        w = self.params["weight_hh" + sfx]
        dxp = self._buf("dxp", (t, n, 3 * h), s.dtype)  # d loss / d (x W_ih + bias): [d a_r, d a_z, d a_n]
        dgh = self._buf("dgh", (t, n, 3 * h), s.dtype)  # d loss / d (h W_hh): [d a_r, d a_z, r d a_n]
        dh = self._start_grad(dlast, n, h, s.dtype)
        dhz = np.empty((n, h), dtype=s.dtype)
        tmp = np.empty((n, h), dtype=s.dtype)
        sd = np.empty((n, 2 * h), dtype=s.dtype)
        r = int(reverse)
        order = self._order(t, not reverse)
        for k in order:
            if dseq is not None:
                dh += dseq[k]
            g, cand, prev, dk = rz[k], nn[k], s[k + r], dxp[k]
            z = g[:, h:]
            dan = dk[:, 2 * h :]
            np.multiply(dh, z, out=dhz)  # the direct path h' <- z h
            np.subtract(dh, dhz, out=tmp)  # d n = dh (1 - z)
            np.multiply(cand, cand, out=dan)
            np.subtract(1, dan, out=dan)
            dan *= tmp  # d a_n = d n (1 - n^2)
            np.multiply(dan, ghn[k], out=dk[:, :h])  # d r
            np.subtract(prev, cand, out=dk[:, h : 2 * h])
            dk[:, h : 2 * h] *= dh  # d z = dh (h - n)
            np.multiply(g, g, out=sd)
            np.subtract(g, sd, out=sd)  # sigmoid' = u (1 - u), both gates at once
            dk[:, : 2 * h] *= sd
            dghk = dgh[k]
            np.copyto(dghk[:, : 2 * h], dk[:, : 2 * h])
            np.multiply(dan, g[:, :h], out=dghk[:, 2 * h :])
            if k != order[-1]:
                np.dot(dghk, w.T, out=dh)
                dh += dhz
        return dxp, dgh

    def _extra_grads(self, sfx, dgh):
        sums = np.dot(self._ones, dgh)  # a GEMV over all columns beats one over a strided slice
        self.grads["bias_hn" + sfx][...] = sums[2 * self.units :]
