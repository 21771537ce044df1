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

A bidirectional layer with few units (at most FUSE_UNITS) runs both directions in one scan: the
directions' weights are stacked block-diagonally, their gate columns interleaved ([r_fwd, r_bwd,
z_fwd, z_bwd, ...]), and the reverse direction reads the time-reversed inputs, so each step is one
product and one set of element-wise operations for both directions. With tiny gate matrices the
per-step Python work decides, and this halves it. Larger layers scan each direction on its own,
where the block products' zero halves would cost more than they save.
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


def _sigmoid_(a: np.ndarray, xp) -> np.ndarray:
    """In place: a = 1 / (1 + exp(-a)), through tanh so it never overflows (`xp`: the array module)."""
    a *= 0.5
    xp.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


# Bidirectional layers with at most this many units scan both directions in one block product per step.
# Measured (forward + backward, batch 100, T = 40, 8 features, float32, 1 thread, best of 5x10, two rounds):
# gru fused / separate 1.6 / 2.3-2.4 ms at 8 units, 2.6 / 2.8-3.4 at 16, 3.9-4.6 / 3.7-4.5 at 24, 5.7-6.7 /
# 4.9-5.6 at 32; lstm alike (1.8 / 2.4-2.6, 3.1 / 3.3-3.9, then even or slower).
FUSE_UNITS = 16


class _Recurrent(Layer):
    """Shared machinery: parameters per direction, time-major layout, the batched GEMMs around the scan.

    The scan runs over a *group* of directions (both of a small bidirectional layer, else one) in step
    order: step k reads time k in a forward direction and time T-1-k in a reverse one, so a group's
    input is its directions' inputs side by side, each in its reading order (`_inputs`). Its weights
    are stacked (`_stack`): with D directions of H units, the gate columns are [gate 0 of each
    direction, gate 1 of each, ...], each block D*H wide, the weight matrices block-diagonal (rows per
    direction), and the state is the directions' states side by side, so every slice a cell takes
    covers all D directions.

    A cell implements `_scan(proj, w) -> (states, cache)` and `_scan_back(cache, states, dseq, dlast, w)
    -> (dxp, dgh)`, with proj the input projection (T, N, G) in step order, w the stacked weights,
    states (T + 1, N, D*H) (states[k] feeds step k, states[k + 1] is its output), and dxp, dgh the
    gradients of the input projection and of the recurrent product h @ weight_hh (T, N, G), from
    which the weight gradients follow as single GEMMs.
    """

    gates = 1
    Params = RecurrentParams
    stacked = ("weight_ih", "weight_hh", "bias")  # per-direction parameters the scan reads

    def setup(self):
        self.directions = [("", False)] + ([("_reverse", True)] if self.bidirectional else [])
        fuse = self.bidirectional and self.units <= FUSE_UNITS
        self.groups = [self.directions] if fuse else [[d] for d in self.directions]
        self._ones = None
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
        width = h * len(self.directions)
        return (input_shape[0], width) if self.return_sequences else (width,)

    def _initial_bias(self) -> np.ndarray:
        return np.zeros(self.gates * self.units)

    def _extra_params(self, sfx: str) -> None:
        pass

    # --- forward / backward ------------------------------------------------------------------

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        xp = self.xp
        n, t, f = x.shape
        h = self.units
        xt = xp.ascontiguousarray(x.transpose(1, 0, 2))  # (T, N, F), time-major
        width = h * len(self.directions)
        y = xp.empty((n, t, width) if self.return_sequences else (n, width), dtype=x.dtype)
        caches = []
        for j, group in enumerate(self.groups):
            self._phase = ("train" if training else "eval") + str(j)
            w = self._stack(group)
            xg = self._inputs(xt, group)
            proj = self._buf("xp", (t, n, w["weight_ih"].shape[1]), x.dtype)
            xp.dot(xg, w["weight_ih"], out=proj.reshape(t * n, -1))  # (T*N, G): the input part of every step at once
            proj += w["bias"]
            s, cache = self._scan(proj, w)
            for i, (_, reverse) in enumerate(group):  # each direction's states into its columns of y
                block, col = s[:, :, i * h : (i + 1) * h], self._column(group, i)
                if self.return_sequences:  # a reverse direction's output for time t is states[T - t]
                    y[:, :, col : col + h] = (block[:0:-1] if reverse else block[1:]).transpose(1, 0, 2)
                else:  # the state after the last step: time T-1 forward, time 0 reverse
                    y[:, col : col + h] = block[-1]
            caches.append((xg, s, w, cache))
        if training:
            self._cache = (x.shape, caches)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xp = self.xp
        (n, t, f), caches = self._take_cache()
        h = self.units
        if self._ones is None or len(self._ones) != t * n:
            self._ones = xp.ones(t * n, dtype=dy.dtype)
        dxt = None
        for j, (group, (xg, s, w, cache)) in enumerate(zip(self.groups, caches, strict=True)):
            self._phase = "backward" + str(j)
            width = h * len(group)
            col = self._column(group, 0)
            if self.return_sequences:  # the upstream gradient of each step's output, in step order
                dseq, dlast = self._buf("dseq", (t, n, width), dy.dtype), None
                for i, (_, reverse) in enumerate(group):
                    part = dy[:, :, col + i * h : col + (i + 1) * h]
                    dseq[:, :, i * h : (i + 1) * h] = (part[:, ::-1] if reverse else part).transpose(1, 0, 2)
            else:
                dseq, dlast = None, dy[:, col : col + width]
            dxp, dgh = self._scan_back(cache, s, dseq, dlast, w)
            dxp = dxp.reshape(t * n, -1)  # (T*N, G), in step order like the inputs and states each step read
            dgh = dgh.reshape(t * n, -1)
            prev = s[:-1].reshape(t * n, width)
            grads = {  # off the diagonal blocks: cross terms between directions, unused
                "weight_ih": xp.dot(xg.T, dxp),
                "weight_hh": xp.dot(prev.T, dgh),
                "bias": xp.dot(self._ones, dxp),
            }
            self._extra_grads(grads, dgh)
            self._unstack(grads, group)
            if self.needs_input_grad:
                dxg = xp.dot(dxp, w["weight_ih"].T).reshape(t, n, len(group), f)  # (T, N, D, F)
                for i, (_, reverse) in enumerate(group):
                    part = dxg[::-1, :, i] if reverse else dxg[:, :, i]  # back to time order
                    dxt = part if dxt is None else xp.add(dxt, part, out=dxt)
        if not self.needs_input_grad:
            return None  # type: ignore[return-value]
        return xp.ascontiguousarray(dxt.transpose(1, 0, 2))

    def _extra_grads(self, grads: dict[str, np.ndarray], dgh: np.ndarray) -> None:
        pass

    # --- direction groups --------------------------------------------------------------------

    def _column(self, group, i: int) -> int:
        """First output column of direction i of the group: directions are [forward, reverse] in y."""
        return self.directions.index(group[i]) * self.units

    def _inputs(self, xt: np.ndarray, group) -> np.ndarray:
        """(T*N, D*F): the group's directions' inputs side by side, each in its reading order."""
        if group == [("", False)]:
            return xt.reshape(-1, xt.shape[2])
        t, n, f = xt.shape
        xg = self._buf("xg", (t, n, len(group), f), xt.dtype)
        for i, (_, reverse) in enumerate(group):
            xg[:, :, i] = xt[::-1] if reverse else xt
        return xg.reshape(t * n, -1)

    def _stack(self, group) -> dict[str, np.ndarray]:
        """The group's weights: matrices block-diagonal, gate columns interleaved; one direction's as they are."""
        if len(group) == 1:
            return {name: self.params[name + group[0][0]] for name in self.stacked}
        d = len(group)
        w = {}
        for name in self.stacked:
            first = self.params[name + group[0][0]]
            shape = tuple(size * d for size in first.shape)
            w[name] = out = self._buf("w_" + name, shape, first.dtype)
            if first.ndim == 2:
                out[...] = 0
            for i, (sfx, _) in enumerate(group):
                self._block(out, d, i)[...] = self._block(self.params[name + sfx], 1, 0)
        return w

    def _unstack(self, grads: dict[str, np.ndarray], group) -> None:
        """Each direction's gradients from the group's stacked ones (of a matrix, its diagonal block)."""
        d = len(group)
        for name, big in grads.items():
            for i, (sfx, _) in enumerate(group):
                self._block(self.grads[name + sfx], 1, 0)[...] = self._block(big, d, i)

    def _block(self, a: np.ndarray, d: int, i: int) -> np.ndarray:
        """View of direction i's entries in an array stacked from d directions: columns (gate, d, units), and
        for a matrix rows (d, fan_in)."""
        h = self.units
        if a.ndim == 1:
            return a.reshape(-1, d, h)[:, i]
        return a.reshape(d, a.shape[0] // d, -1, d, h)[i, :, :, i]

    # --- helpers for the cells ---------------------------------------------------------------

    def _buf(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A scratch array kept between calls (uninitialised). Fresh multi-megabyte arrays cost a page fault per
        4 KiB on first touch, which made each step several times slower; training forward, eval forward and
        backward use separate ones, so an eval pass never overwrites what a pending backward needs."""
        key = (self._phase, name, shape, np.dtype(dtype).str)
        buf = self._workspace.get(key)
        if buf is None:
            if len(self._workspace) > 128:  # many batch sizes seen (a layer keeps 20-50 per size): start over
                self._workspace.clear()
            buf = self._workspace[key] = self.xp.empty(shape, dtype=dtype)
        return buf

    def _new_states(self, t: int, n: int, width: int, dtype, name: str = "s") -> np.ndarray:
        s = self._buf(name, (t + 1, n, width), dtype)
        s[0] = 0  # zero initial state
        return s

    def _start_grad(self, dlast, n: int, width: int, dtype) -> np.ndarray:
        """Gradient flowing into the final state: the upstream one (many-to-one) or zero."""
        dh = self._buf("dh", (n, width), dtype)
        if dlast is None:
            dh[...] = 0
        else:
            self.xp.copyto(dh, dlast)
        return dh

    def describe(self) -> str:
        extra = ", sequences" if self.return_sequences else ""
        extra += ", bidirectional" if self.bidirectional else ""
        return f"{self.name}({self.units}{extra})"

    def _scan(self, proj, w):
        raise NotImplementedError

    def _scan_back(self, cache, s, dseq, dlast, w):
        raise NotImplementedError


@LAYERS.register("simple_rnn")
class SimpleRNN(_Recurrent):
    """h_t = act(x_t @ weight_ih + h_{t-1} @ weight_hh + bias), act tanh or relu (Elman network)."""

    class Params(RecurrentParams):
        activation: Literal["tanh", "relu"] = Field("tanh", description="Non-linearity of the state update.")

    def _scan(self, proj, w):
        xp = self.xp
        t, n, h = proj.shape
        w_hh = w["weight_hh"]
        s = self._new_states(t, n, h, proj.dtype)
        for k in range(t):
            new = s[k + 1]
            xp.dot(s[k], w_hh, out=new)
            new += proj[k]
            if self.activation == "tanh":
                xp.tanh(new, out=new)
            else:
                xp.maximum(new, 0, out=new)
        return s, None

    def _scan_back(self, cache, s, dseq, dlast, w):
        xp = self.xp
        t, n, h = s.shape[0] - 1, s.shape[1], s.shape[2]
        w_hh = w["weight_hh"]
        d = self._buf("d", (t, n, h), s.dtype)  # d loss / d pre-activation, per step
        deriv = self._buf("deriv", (t, n, h), s.dtype)  # the activation's derivative, every step at once
        if self.activation == "tanh":
            xp.multiply(s[1:], s[1:], out=deriv)
            xp.subtract(1, deriv, out=deriv)
        else:
            xp.greater(s[1:], 0, out=deriv)
        dh = self._start_grad(dlast, n, h, s.dtype)
        for k in range(t - 1, -1, -1):
            if dseq is not None:
                dh += dseq[k]
            xp.multiply(dh, deriv[k], out=d[k])
            if k:  # the initial state is a constant: no gradient needed for it
                xp.dot(d[k], w_hh.T, out=dh)
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

    def _constants(self, h: int, dtype) -> tuple[np.ndarray, ...]:
        """(scale, shift, q, p) for gate blocks h wide: all four gate activations as one affine-tanh-affine
        pass, sigmoid(a) = 0.5 tanh(a / 2) + 0.5; the derivative from the output u is u (q - u) + p,
        u (1 - u) for sigmoid and 1 - u^2 for tanh."""
        key = (h, np.dtype(dtype).str)
        cached = self.__dict__.setdefault("_gate_constants", {})
        if key not in cached:  # made on the host once, moved to the device once
            sig = np.ones((4, h), dtype=bool)
            sig[2] = False  # the g block is tanh
            sig = sig.ravel()
            pairs = ((0.5, 1.0), (0.5, 0.0), (1.0, 0.0), (0.0, 1.0))
            cached[key] = tuple(self.device.to_device(np.where(sig, a, b).astype(dtype)) for a, b in pairs)
        return cached[key]

    def _scan(self, proj, w):
        xp = self.xp
        t, n, _ = proj.shape
        w_hh = w["weight_hh"]
        h = w_hh.shape[0]  # state width: units times directions
        scale, shift, _, _ = self._constants(h, proj.dtype)
        s = self._new_states(t, n, h, proj.dtype)
        c = self._new_states(t, n, h, proj.dtype, "c")  # cell states, same layout
        acts = self._buf("acts", (t, n, 4 * h), proj.dtype)  # gate outputs i, f, g, o
        tc = self._buf("tc", (t, n, h), proj.dtype)  # tanh(c)
        ig = self._buf("ig", (n, h), proj.dtype)
        for k in range(t):
            a = acts[k]
            xp.dot(s[k], w_hh, out=a)
            a += proj[k]
            a *= scale
            xp.tanh(a, out=a)
            a *= scale
            a += shift
            c_new = c[k + 1]
            xp.multiply(a[:, h : 2 * h], c[k], out=c_new)  # f * c
            xp.multiply(a[:, :h], a[:, 2 * h : 3 * h], out=ig)  # i * g
            c_new += ig
            xp.tanh(c_new, out=tc[k])
            xp.multiply(a[:, 3 * h :], tc[k], out=s[k + 1])  # o * tanh(c)
        return s, (c, acts, tc)

    def _scan_back(self, cache, s, dseq, dlast, w):
        xp = self.xp
        c, acts, tc = cache
        t, n, h = s.shape[0] - 1, s.shape[1], s.shape[2]
        w_hh = w["weight_hh"]
        _, _, q, p = self._constants(h, s.dtype)
        d = self._buf("d", (t, n, 4 * h), s.dtype)  # d loss / d gate pre-activations
        # What does not depend on the incoming gradient, for every step at once: the gate activations'
        # derivatives u (q - u) + p, and o (1 - tanh(c)^2), the path from h to c.
        deriv = self._buf("deriv", (t, n, 4 * h), s.dtype)
        xp.subtract(q, acts, out=deriv)
        deriv *= acts
        deriv += p
        oc = self._buf("oc", (t, n, h), s.dtype)
        xp.multiply(tc, tc, out=oc)
        xp.subtract(1, oc, out=oc)
        oc *= acts[:, :, 3 * h :]
        dh = self._start_grad(dlast, n, h, s.dtype)
        dc = self._buf("dc", (n, h), s.dtype)
        dc[...] = 0
        tmp = self._buf("tmp", (n, h), s.dtype)
        for k in range(t - 1, -1, -1):
            if dseq is not None:
                dh += dseq[k]
            a, dk = acts[k], d[k]
            xp.multiply(dh, oc[k], out=tmp)  # dc += dh * o * (1 - tanh(c)^2)
            dc += tmp
            xp.multiply(dc, a[:, 2 * h : 3 * h], out=dk[:, :h])  # d i
            xp.multiply(dc, c[k], out=dk[:, h : 2 * h])  # d f
            xp.multiply(dc, a[:, :h], out=dk[:, 2 * h : 3 * h])  # d g
            xp.multiply(dh, tc[k], out=dk[:, 3 * h :])  # d o
            dk *= deriv[k]
            if k:
                dc *= a[:, h : 2 * h]  # through c = f * c_prev + ...
                xp.dot(dk, w_hh.T, out=dh)
        return d, d


@LAYERS.register("gru")
class GRU(_Recurrent):
    """[r, z] = sig(x W_i + h W_h + b); n = tanh(x W_in + b_in + r (h W_hn + b_hn)); h' = (1 - z) n + z h."""

    gates = 3
    stacked = ("weight_ih", "weight_hh", "bias", "bias_hn")

    def _extra_params(self, sfx):
        self._param("bias_hn" + sfx, np.zeros(self.units))

    def _scan(self, proj, w):
        xp = self.xp
        t, n, _ = proj.shape
        w_hh, b_hn = w["weight_hh"], w["bias_hn"]
        h = w_hh.shape[0]  # state width: units times directions
        s = self._new_states(t, n, h, proj.dtype)
        rz = self._buf("rz", (t, n, 2 * h), proj.dtype)  # reset and update gates
        nn = self._buf("nn", (t, n, h), proj.dtype)  # candidate states
        ghn = self._buf("ghn", (t, n, h), proj.dtype)  # h W_hn + b_hn, what the reset gate scales
        gh = self._buf("gh", (n, 3 * h), proj.dtype)
        gh_rz, gh_n = gh[:, : 2 * h], gh[:, 2 * h :]
        xp_rz, xp_n = proj[:, :, : 2 * h], proj[:, :, 2 * h :]
        for k in range(t):
            prev, new, g, cand = s[k], s[k + 1], rz[k], nn[k]
            xp.dot(prev, w_hh, out=gh)
            xp.add(xp_rz[k], gh_rz, out=g)
            _sigmoid_(g, self.xp)
            xp.add(gh_n, b_hn, out=ghn[k])
            xp.multiply(g[:, :h], ghn[k], out=cand)
            cand += xp_n[k]
            xp.tanh(cand, out=cand)
            xp.subtract(prev, cand, out=new)  # h' = n + z (h - n)
            new *= g[:, h:]
            new += cand
        return s, (rz, nn, ghn)

    def _scan_back(self, cache, s, dseq, dlast, w):
        xp = self.xp
        rz, nn, ghn = cache
        t, n, h = s.shape[0] - 1, s.shape[1], s.shape[2]
        w_hh = w["weight_hh"]
        r, z = rz[:, :, :h], rz[:, :, h:]
        dxp = self._buf("dxp", (t, n, 3 * h), s.dtype)  # d loss / d (x W_ih + bias): [d a_r, d a_z, d a_n]
        dgh = self._buf("dgh", (t, n, 3 * h), s.dtype)  # d loss / d (h W_hh): [d a_r, d a_z, r d a_n]
        # The factors that do not depend on the incoming gradient dh, for every step at once, so that
        # each step is five products: d a_n = dh (1 - z)(1 - n^2); d a_r = d a_n (h W_hn + b_hn) r (1 - r);
        # d a_z = dh (h - n) z (1 - z); and the direct path h' <- z h.
        one_minus_z = self._buf("omz", (t, n, h), s.dtype)
        xp.subtract(1, z, out=one_minus_z)
        za = self._buf("za", (t, n, h), s.dtype)  # (1 - z)(1 - n^2)
        xp.multiply(nn, nn, out=za)
        xp.subtract(1, za, out=za)
        za *= one_minus_z
        gs = self._buf("gs", (t, n, h), s.dtype)  # (h W_hn + b_hn) r (1 - r)
        xp.subtract(1, r, out=gs)
        gs *= r
        gs *= ghn
        pzs = self._buf("pzs", (t, n, h), s.dtype)  # (h - n) z (1 - z)
        xp.subtract(s[:-1], nn, out=pzs)
        pzs *= z
        pzs *= one_minus_z
        dh = self._start_grad(dlast, n, h, s.dtype)
        dhz = self._buf("dhz", (n, h), s.dtype)
        for k in range(t - 1, -1, -1):
            if dseq is not None:
                dh += dseq[k]
            dghk, dan = dgh[k], dxp[k, :, 2 * h :]
            xp.multiply(dh, za[k], out=dan)
            xp.multiply(dan, gs[k], out=dghk[:, :h])  # d a_r
            xp.multiply(dh, pzs[k], out=dghk[:, h : 2 * h])  # d a_z
            xp.multiply(dan, r[k], out=dghk[:, 2 * h :])  # r d a_n
            if k:
                xp.multiply(dh, z[k], out=dhz)
                xp.dot(dghk, w_hh.T, out=dh)
                dh += dhz
        dxp[:, :, : 2 * h] = dgh[:, :, : 2 * h]  # the gates' pre-activations get the same gradient from both sides
        return dxp, dgh

    def _extra_grads(self, grads, dgh):
        sums = self.xp.dot(self._ones, dgh)  # a GEMV over all columns beats one over a strided slice
        grads["bias_hn"] = sums[2 * (sums.shape[0] // 3) :]
