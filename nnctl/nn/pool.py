"""Pooling over signals (C, L) and images (C, H, W): max, average, and global average.

Like the convolutions, pooling works channels-last inside (see conv.py) and loops over the window's
k*k offsets, each a strided slice of the whole batch: no loop over samples, no window copies.
Max pooling routes the gradient to the first maximum of each window (as PyTorch does). Training
steps reuse the output, the input gradient and the masks (`Scratch`, see conv.py): what a training
forward or backward returns is valid until the layer's next training step.

A max pool right after a conv with relu also applies that relu's gradient mask, at the pooled resolution
(`fuse_relu_masks`, wired by the network at build): see `_MaxPool.relu_mask`.
"""

from __future__ import annotations

import itertools

import numpy as np
from pydantic import Field, model_validator

from nnctl import batchsplit
from nnctl.errors import ConfigError
from nnctl.nn.conv import Scratch, _Conv, _tuple, channels_first, channels_last, require_spatial
from nnctl.nn.layer import Layer
from nnctl.registry import LAYERS, Params


def _pool_params(dims: int) -> type[Params]:
    size = int if dims == 1 else (int | tuple[int, int])

    class PoolParams(Params):
        pool_size: size = Field(
            2, description="Window size; one int for a square window." if dims == 2 else "Window length."
        )  # type: ignore[valid-type]
        stride: size | None = Field(  # type: ignore[valid-type]
            None, description="Step between windows; null = pool_size (non-overlapping windows)."
        )

        @model_validator(mode="after")
        def _positive(self):
            for key in ("pool_size", "stride"):
                value = getattr(self, key)
                if value is not None and any(v < 1 for v in ((value,) if isinstance(value, int) else value)):
                    raise ValueError(f"{key} must be at least 1, got {value}")
            return self

    return PoolParams


class _Pool(Scratch, Layer):
    """Shared window bookkeeping; subclasses give the reduction. Windows that do not fit are dropped."""

    dims: int

    def setup(self):
        self.pool = _tuple(self.pool_size, self.dims, "pool_size")
        self.stride = _tuple(self.stride, self.dims, "stride") if self.stride is not None else self.pool
        self._slices: list | None = None

    def _build(self, input_shape, rng):
        require_spatial(self, input_shape, self.dims)
        sizes = input_shape[1:]
        self._slices = None
        if any(k > s for k, s in zip(self.pool, sizes, strict=True)):
            raise ConfigError(
                f"pool window {'x'.join(map(str, self.pool))} is larger than its input {input_shape}; use a smaller "
                "pool_size or fewer pooling layers."
            )
        self.out_sizes = tuple((s - k) // st + 1 for s, k, st in zip(sizes, self.pool, self.stride, strict=True))
        # Non-overlapping windows: the backward assigns instead of adding (positions no window covers, at
        # the far edges, stay 0 in the reused gradient array).
        self.overlap = any(st < k for st, k in zip(self.stride, self.pool, strict=True))
        # Windows that cover every input position exactly once (no overlap, no gaps, nothing dropped at the edges).
        self.tiles = all(
            st == k and s == n * k for s, k, st, n in zip(sizes, self.pool, self.stride, self.out_sizes, strict=True)
        )
        return (input_shape[0], *self.out_sizes)

    def _offsets(self) -> list[tuple[slice, ...]]:
        """Per window offset, the slices of the input (channels-last) it reads, for every window at once."""
        if self._slices is None:
            self._slices = [
                (slice(None),)
                + tuple(
                    slice(o, o + s * (n - 1) + 1, s)
                    for o, s, n in zip(offset, self.stride, self.out_sizes, strict=True)
                )
                for offset in itertools.product(*(range(k) for k in self.pool))
            ]
        return self._slices

    def describe(self) -> str:
        text = "x".join(map(str, self.pool))
        if self.stride != self.pool:
            text += f", stride {'x'.join(map(str, self.stride))}"
        return f"{self.name}({text})"


class _MaxPool(_Pool):
    # Set at build by `fuse_relu_masks` when the input is a relu conv's output (`_relu_conv`): a training step
    # whose input is that conv's output of the same step then returns the gradient with respect to the conv's
    # pre-activation, dx * (x > 0), instead of dx, and tells the conv so (`_Conv.masked_dy`).
    _relu_conv = None

    @property
    def relu_mask(self) -> bool:
        """Whether `fuse_relu_masks` wired this pool to the relu conv before it."""
        return self._relu_conv is not None

    def split_work(self, n: int) -> tuple[int, int]:
        """(input elements for n samples, the least worth splitting over threads)."""
        return n * int(np.prod(self.input_shape)), batchsplit.MIN_ELEMENTS

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        xp = self.xp
        xh = channels_last(x)  # (N, *S, C)
        offsets = self._offsets()
        shape = xh[offsets[0]].shape  # (N, *out, C)
        y = self._buffer("out", shape, dtype=x.dtype) if training else xp.empty(shape, dtype=x.dtype)
        # The fused mask only on the wired conv's own output, this step's (checked by identity: the network hands
        # each layer's result to the next): a pool run on anything else, alone as by gradcheck, is a plain pool.
        fused = training and self._relu_conv is not None and x is self._relu_conv.returned
        if training:
            # Training also records each window's winner: the offset of its first maximum (only a strictly
            # larger value replaces it, so later ties lose, as in PyTorch). The backward then reads this one
            # small contiguous array instead of comparing the input with the output again at every offset.
            index = np.uint8 if len(offsets) < 256 else np.intp
            winner = self._buffer("winner", shape, dtype=index)
            larger = self._buffer("larger", shape, dtype=bool)
            candidate = self._buffer("candidate", shape, dtype=index)
            # Each window offset's inputs, copied once: the comparison and the maximum below then both read
            # contiguous memory instead of rows of C values strided through x, which NumPy passes through its
            # ufunc buffer (benchmark CNN, one thread, alternating with the strided code: pool1's forward
            # 0.86 -> 0.71 ms, 1.39 -> 1.20 with cold caches; pool2's 0.31 -> 0.27).
            window = self._buffer("window", shape, dtype=x.dtype)

        def part(_, a: int, b: int) -> None:  # samples [a, b)
            xa, ya = xh[a:b], y[a:b]
            xp.copyto(ya, xa[offsets[0]])
            if not training:
                for sl in offsets[1:]:
                    xp.maximum(ya, xa[sl], out=ya)
                return
            wa, la, ca, xk = winner[a:b], larger[a:b], candidate[a:b], window[a:b]
            wa.fill(0)
            for k, sl in enumerate(offsets[1:], start=1):
                xp.copyto(xk, xa[sl])
                xp.greater(xk, ya, out=la)
                # winner = k where larger, else unchanged: k exceeds every earlier offset, so a maximum does it
                # (numpy's copyto(where=) and putmask take 50-70x longer than these two passes).
                xp.maximum(wa, xp.multiply(la, index(k), out=ca), out=wa)
                xp.maximum(ya, xk, out=ya)
            if fused:
                # The relu's mask x > 0 matters only at a window's winner, where x = y: a window whose maximum is
                # not positive gets the winner `none` (no offset's), so the backward gives it no gradient
                # anywhere. Three passes over the pooled output here replace the conv's mask and its copy
                # over the 4x larger input (benchmark CNN, one thread: -0.45 ms per step).
                xp.less_equal(ya, 0, out=la)
                xp.maximum(wa, xp.multiply(la, index(len(offsets)), out=ca), out=wa)

        if batchsplit.on and batchsplit.worth_splitting(self, len(x), self.split_work):
            batchsplit.run(len(x), part)
        else:
            part(0, 0, len(x))
        if training:
            # The input itself only where the backward may write over it (see there): anything else keeps just
            # its shape, so the pool does not hold the previous layer's output (a batch norm's, a dropout's)
            # alive through the rest of the step.
            self._cache = (xh.shape, winner, xh if fused and self.tiles else None, fused)
        return channels_first(y)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xp = self.xp
        in_shape, winner, xh, fused = self._take_cache()
        dyh = channels_last(dy)
        contiguous = None
        if not dyh.flags.c_contiguous:
            # One copy, rather than every multiply below walking dy across the grain of dx (dy from a flatten is
            # channel-first) or in short rows (a conv's input gradient is a view inside its padded array:
            # benchmark CNN, pool1, one thread: the copy costs 0.03 ms, the four multiplies save 0.15).
            contiguous = self._buffer("dy", dyh.shape, dtype=dy.dtype)
        split = batchsplit.on and batchsplit.worth_splitting(self, in_shape[0], self.split_work)
        if xh is not None and xh.flags.c_contiguous and xh.dtype == dy.dtype:
            # The conv's output is needed by nobody any more (its backward skips the mask, the pool has its
            # winners): dx goes into that memory, which the conv's next forward then rewrites while it is still
            # in cache, instead of into a separate array (benchmark CNN, one thread: -0.3 ms per step).
            dx = xh
        else:
            dx = self._buffer("dx", in_shape, zero=self.overlap and not split, dtype=dy.dtype)
        hit = self._buffer("hit", winner.shape, dtype=bool)
        share = self._buffer("share", winner.shape, dtype=dy.dtype) if self.overlap else None

        def part(_, a: int, b: int) -> None:  # samples [a, b)
            d = dyh[a:b]
            if contiguous is not None:
                xp.copyto(contiguous[a:b], d)
                d = contiguous[a:b]
            dxa, wa, ha = dx[a:b], winner[a:b], hit[a:b]
            if self.overlap and split:
                dxa.fill(0)
            for k, sl in enumerate(self._offsets()):
                xp.equal(wa, k, out=ha)
                if self.overlap:
                    dxa[sl] += xp.multiply(d, ha, out=share[a:b])
                else:
                    xp.multiply(d, ha, out=dxa[sl])

        if split:
            batchsplit.run(in_shape[0], part)
        else:
            part(0, 0, in_shape[0])
        dx = channels_first(dx)
        if fused:
            self._relu_conv.masked_dy = dx  # the conv's backward skips its mask for this gradient alone
        return dx


def fuse_relu_masks(layers: list[Layer]) -> None:
    """Let each max pool with non-overlapping windows that directly follows a conv with relu apply that relu's
    gradient mask (the conv then skips it); every other conv and max pool in `layers` keeps its own.

    Exact: at a window's winner the conv's output equals the pooled value, and elsewhere the pool's gradient
    is 0 (of dy's sign) either way. The pool's backward may then write its gradient over the conv's output
    (the input it was given): the network passes it on to nobody else. Overlapping windows are left alone:
    there a position's gradient is a sum, and masking the terms instead of the sum could turn a -0.0 into +0.0.
    The wiring only permits: each step the pool checks that its input is the conv's output of that step, and
    the conv that the gradient it gets back is the one the pool masked, so a layer run alone stays plain."""
    for layer in layers:
        if isinstance(layer, _Conv):
            layer.relu_mask_by_next = False
        elif isinstance(layer, _MaxPool):
            layer._relu_conv = None
    for before, after in itertools.pairwise(layers):
        if isinstance(before, _Conv) and before.fused_relu and isinstance(after, _MaxPool) and not after.overlap:
            before.relu_mask_by_next = True
            after._relu_conv = before


class _AvgPool(_Pool):
    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        xh = channels_last(x)
        offsets = self._offsets()
        y = xh[offsets[0]].copy()
        for sl in offsets[1:]:
            y += xh[sl]
        y *= y.dtype.type(1.0 / len(offsets))
        if training:
            self._cache = xh.shape
        return channels_first(y)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        in_shape = self._take_cache()
        share = channels_last(dy) * dy.dtype.type(1.0 / np.prod(self.pool))
        dx = self._buffer("dx", in_shape, zero=self.overlap, dtype=dy.dtype)
        for sl in self._offsets():
            if self.overlap:
                dx[sl] += share
            else:
                dx[sl] = share
        return channels_first(dx)


class _GlobalAvgPool(Layer):
    """y[n, c] = mean of x[n, c] over all positions: (C, *S) -> (C,)."""

    dims: int

    def _build(self, input_shape, rng):
        require_spatial(self, input_shape, self.dims)
        return (input_shape[0],)

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        xh = channels_last(x)
        n, c = len(x), x.shape[1]
        y = xh.reshape(n, -1, c).mean(axis=1) if xh.flags.c_contiguous else x.mean(axis=tuple(range(2, x.ndim)))
        if training:
            self._cache = xh.shape
        return y.astype(x.dtype, copy=False)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        in_shape = self._take_cache()
        positions = int(np.prod(in_shape[1:-1]))
        dx = self.xp.empty(in_shape, dtype=dy.dtype)
        dx[...] = (dy * dy.dtype.type(1.0 / positions))[(slice(None),) + (None,) * self.dims]
        return channels_first(dx)


@LAYERS.register("max_pool2d")
class MaxPool2D(_MaxPool):
    """y[n, c, i, j] = max of x[n, c] over the window at (i*s, j*s); inputs (C, H, W)."""

    dims = 2
    Params = _pool_params(2)


@LAYERS.register("avg_pool2d")
class AvgPool2D(_AvgPool):
    """y[n, c, i, j] = mean of x[n, c] over the window at (i*s, j*s); inputs (C, H, W)."""

    dims = 2
    Params = _pool_params(2)


@LAYERS.register("max_pool1d")
class MaxPool1D(_MaxPool):
    """y[n, c, i] = max of x[n, c] over the window at i*s; inputs (C, L)."""

    dims = 1
    Params = _pool_params(1)


@LAYERS.register("avg_pool1d")
class AvgPool1D(_AvgPool):
    """y[n, c, i] = mean of x[n, c] over the window at i*s; inputs (C, L)."""

    dims = 1
    Params = _pool_params(1)


@LAYERS.register("global_avg_pool2d")
class GlobalAvgPool2D(_GlobalAvgPool):
    """y[n, c] = mean of x[n, c, :, :]: (C, H, W) -> (C,), a flat vector for dense layers."""

    dims = 2


@LAYERS.register("global_avg_pool1d")
class GlobalAvgPool1D(_GlobalAvgPool):
    """y[n, c] = mean of x[n, c, :]: (C, L) -> (C,)."""

    dims = 1
