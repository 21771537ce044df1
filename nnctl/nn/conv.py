"""Convolutions over signals (conv1d, inputs (C, L)) and images (conv2d, inputs (C, H, W)).

Users' layout is channel-first, as in PyTorch and most .npz files. Inside, the engine works
channels-last: a layer moves the channel axis last (a transposed view) and returns its result as
a channel-first *view* of a channels-last array. Conv and pooling layers that follow each other
therefore pass channels-last memory along without a single transpose copy, the patch matrix of
im2col is contiguous, and `flatten` still flattens in channel-first order (C, H, W).

Forward: pad, take every patch with `sliding_window_view` (a view), copy it once into the patch
matrix (N*out_positions, k_h*k_w*C) and multiply by the weight (k_h*k_w*C, filters): one GEMM per
layer per batch. Backward: dW = patches.T @ dy, db = ones @ dy, and per kernel offset its block of
dpatches = dy @ W.T (a contiguous (N*out, C) product, still in cache) slice-added into dx (k_h*k_w
of them), never `np.add.at`, never a loop over samples.

Training steps reuse memory: the padded input, the patch matrix, the output and the input gradient
live in arrays the layer keeps per batch shape (`Scratch`), so a step allocates no large arrays. Fresh
multi-megabyte arrays cost a page fault per 4 KiB every step (glibc hands freed large blocks back to
the OS); on the benchmark CNN that was about a quarter of the step. So what a training forward or
backward returns is valid until the layer's next training step; evaluation returns fresh arrays. A
`relu` activation is applied in place on the output, and its mask multiplies dy straight into the
GEMM operand of the backward.

With 2+ threads on a large layer the batch is split into parts run on parallel Python threads, BLAS on
one thread each (`nnctl/batchsplit.py`): the im2col copies, relu and slice-adds then use every core,
not only the GEMMs. Each part fills its own samples' rows of the shared buffers; dW and db per part,
summed in part order.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from nnctl import batchsplit
from nnctl.errors import ConfigError
from nnctl.nn import elementwise
from nnctl.nn.activations import ACTIVATION_NAMES, ReLU
from nnctl.nn.init import Init, initialize
from nnctl.nn.layer import Layer
from nnctl.registry import LAYERS, Params

Padding = Literal["valid", "same"] | int


def channels_last(x: np.ndarray) -> np.ndarray:
    """(N, C, *S) -> (N, *S, C) view (an array method: the same on every device)."""
    return x.transpose(0, *range(2, x.ndim), 1)


def channels_first(x: np.ndarray) -> np.ndarray:
    """(N, *S, C) -> (N, C, *S) view."""
    return x.transpose(0, x.ndim - 1, *range(1, x.ndim - 1))


def require_spatial(layer: Layer, input_shape: tuple[int, ...], dims: int) -> None:
    """Inputs must be (C, L) for 1-D layers and (C, H, W) for 2-D layers."""
    if len(input_shape) != dims + 1:
        want = "(channels, length)" if dims == 1 else "(channels, height, width)"
        hint = (
            "use an image/signal data source (digits_images, image_npz, image_csv with shape:, image_folder) "
            "or a `reshape` layer before it"
            if len(input_shape) == 1
            else "check the data's sample shape or add a `reshape` layer"
        )
        raise ConfigError(f"layer '{layer.name}' expects inputs {want} but gets shape {input_shape}; {hint}.")


def _tuple(value: int | tuple[int, ...] | list[int], dims: int, what: str) -> tuple[int, ...]:
    values = (value,) * dims if isinstance(value, int) else tuple(value)
    if len(values) != dims:
        raise ConfigError(f"{what} needs {dims} value(s), got {list(values)}")
    return values


class Scratch:
    """Arrays a layer keeps between training steps, one per name, remade when the shape changes."""

    def _buffer(self, key: str, shape: tuple[int, ...], zero: bool = False, dtype=None) -> np.ndarray:
        """The array named `key` of this shape and dtype (the layer's by default): zeros when new, filled
        with 0 again if `zero`."""
        buffers = self.__dict__.setdefault("_buffers", {})
        buf = buffers.get(key)
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self.xp.zeros(shape, dtype=dtype)
            buffers[key] = buf
        elif zero:
            buf.fill(0)
        return buf

    def _ones(self, n: int) -> np.ndarray:
        """n ones: a bias gradient is ones @ dy, one GEMV pass (numpy's column sums of a tall array take 4-8x longer)."""
        ones = self._buffer("ones", (n,))
        if self.__dict__.get("_ones_filled") is not ones:  # new: filled once (no read back from a GPU)
            ones.fill(1)
            self._ones_filled = ones
        return ones


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) so that out = ceil(size / stride), the extra pixel going after (as TensorFlow)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _Conv(Scratch, Layer):
    """Shared N-d convolution over channels-last data; `dims` = 1 (signals) or 2 (images)."""

    dims: int

    def setup(self):
        self.kernel = _tuple(self.kernel_size, self.dims, "kernel_size")
        self.stride = _tuple(self.stride, self.dims, "stride")
        self.dilation = _tuple(self.dilation, self.dims, "dilation")
        act = self.activation
        self.activation = LAYERS.get(act).component() if act and act != "linear" else None
        self.fused_relu = type(self.activation) is ReLU  # applied in place, see forward/backward
        # Set at build by the network when the next layer is a max pool that applies this relu's gradient mask
        # at its pooled resolution (pool.py, `fuse_relu_masks`): a training forward then keeps what it returned
        # (`returned`), and the backward skips the mask when the pool hands back the gradient it masked
        # (`masked_dy`, set by the pool's backward).
        self.relu_mask_by_next = False
        self.returned = self.masked_dy = None

    # --- shapes -----------------------------------------------------------------------------------

    def _build(self, input_shape, rng):
        require_spatial(self, input_shape, self.dims)
        channels, sizes = input_shape[0], input_shape[1:]
        self.effective = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation, strict=True))
        if self.padding == "same":
            self.pads = tuple(
                same_padding(s, e, st) for s, e, st in zip(sizes, self.effective, self.stride, strict=True)
            )
        else:
            p = 0 if self.padding == "valid" else int(self.padding)
            self.pads = ((p, p),) * self.dims
        padded = tuple(s + a + b for s, (a, b) in zip(sizes, self.pads, strict=True))
        if any(e > p for e, p in zip(self.effective, padded, strict=True)):
            kernel = "x".join(map(str, self.effective))
            raise ConfigError(
                f"kernel {kernel} (kernel_size {'x'.join(map(str, self.kernel))}, dilation "
                f"{'x'.join(map(str, self.dilation))}) is larger than its padded input "
                f"{'x'.join(map(str, padded))} (input {input_shape}, padding {self.padding!r}). Use a smaller "
                "kernel or dilation, padding: same, or fewer pooling layers before it."
            )
        self.padded = padded
        self.out_sizes = tuple((p - e) // s + 1 for p, e, s in zip(padded, self.effective, self.stride, strict=True))
        fan_in = int(np.prod(self.kernel)) * channels
        # Stored (*kernel, C_in, filters) (TensorFlow's HWIO): the forward GEMM reads it as (k*k*C, F) for free.
        shape = (*self.kernel, channels, self.filters)
        self._param("weight", initialize(self.init, shape, fan_in, self.filters * int(np.prod(self.kernel)), rng))
        if self.use_bias:
            self._param("bias", np.zeros(self.filters))
        out_shape = (self.filters, *self.out_sizes)
        if self.activation is not None:
            self.activation.build(out_shape, rng, self.dtype, self.device)
        return out_shape

    # --- numerics ---------------------------------------------------------------------------------

    def _offsets(self):
        """Per kernel offset: (index into the patch's kernel axes, slices of the padded input it reads)."""
        for offset in itertools.product(*(range(k) for k in self.kernel)):
            slices = tuple(
                slice(o * d, o * d + s * (n - 1) + 1, s)
                for o, d, s, n in zip(offset, self.dilation, self.stride, self.out_sizes, strict=True)
            )
            yield offset, slices

    def split_work(self, n: int) -> tuple[int, int]:
        """(multiply-adds of the forward GEMM for n samples, the least worth splitting over threads)."""
        return n * int(np.prod(self.out_sizes)) * int(np.prod(self.params["weight"].shape)), batchsplit.MIN_PRODUCT

    def _im2col(self, xh: np.ndarray, padded: np.ndarray | None, patches: np.ndarray) -> None:
        """Fill `patches` (n, *out, *kernel, C) from the channels-last input `xh` (n, *S, C), through the
        padded scratch `padded` when the layer pads (its border is zero)."""
        xp = self.xp
        if padded is not None:
            inner = tuple(slice(a, a + s) for (a, _), s in zip(self.pads, xh.shape[1:-1], strict=True))
            padded[(slice(None), *inner)] = xh
        else:
            padded = xh
        if xh.shape[-1] == 1:  # one copy per kernel offset: runs along the width instead of the kernel's 3 taps
            lead = (slice(None),) * (self.dims + 1)
            for offset, slices in self._offsets():
                patches[lead + offset] = padded[(slice(None), *slices)]
        else:
            spatial = tuple(range(1, self.dims + 1))
            windows = xp.lib.stride_tricks.sliding_window_view(
                padded, self.effective, axis=spatial
            )  # (N, *S', C, *eff)
            pick = (slice(None),) + tuple(slice(None, None, s) for s in self.stride) + (slice(None),)
            pick += tuple(slice(None, None, d) for d in self.dilation)
            windows = windows[pick]  # (N, *out, C, *kernel)
            order = (0, *spatial, *range(self.dims + 2, 2 * self.dims + 2), self.dims + 1)
            xp.copyto(patches, windows.transpose(order))  # the one im2col copy: (N, *out, *kernel, C)

    def forward(self, x: np.ndarray, *, training: bool) -> np.ndarray:
        xp = self.xp
        n = len(x)
        xh = channels_last(x)  # (N, *S, C); a contiguous view when the previous layer is a conv/pool
        channels = xh.shape[-1]
        padded = None
        if any(a or b for a, b in self.pads):
            # Training reuses one padded scratch array (its border stays zero); eval may run on other batches.
            padded_shape = (n, *self.padded, channels)
            padded = self._buffer("padded", padded_shape) if training else xp.zeros(padded_shape, dtype=self.dtype)
        patch_shape = (n, *self.out_sizes, *self.kernel, channels)
        patches = self._buffer("patches", patch_shape) if training else xp.empty(patch_shape, dtype=self.dtype)
        positions = int(np.prod(self.out_sizes))
        rows = n * positions
        y = self._buffer("out", (rows, self.filters)) if training else xp.empty((rows, self.filters), self.dtype)
        weight = self.params["weight"].reshape(-1, self.filters)

        def part(_, a: int, b: int) -> None:  # samples [a, b): im2col, one GEMM, bias, relu
            self._im2col(xh[a:b], None if padded is None else padded[a:b], patches[a:b])
            out = y[a * positions : b * positions]
            xp.dot(patches[a:b].reshape(out.shape[0], -1), weight, out=out)  # (n*out, F), channels-last
            if self.use_bias:
                elementwise.add_bias_(xp, out, self.params["bias"])
            if self.fused_relu:
                elementwise.relu_(xp, out)

        if batchsplit.on and batchsplit.worth_splitting(self, n, self.split_work):
            batchsplit.run(n, part)
        else:
            part(0, 0, n)
        if training:
            self._cache = (patches.reshape(rows, -1), xh.shape, y)
        y = channels_first(y.reshape(n, *self.out_sizes, self.filters))  # (N, F, *out) view
        if self.activation is not None and not self.fused_relu:
            y = self.activation.forward(y, training=training)
        if training and self.relu_mask_by_next:
            self.returned, self.masked_dy = y, None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        cols, in_shape, y = self._take_cache()
        xp = self.xp
        n, channels = in_shape[0], in_shape[-1]
        positions = int(np.prod(self.out_sizes))
        weight = self.params["weight"].reshape(-1, self.filters)
        split = batchsplit.on and batchsplit.worth_splitting(self, n, self.split_work)
        masked = self.masked_dy is not None and dy is self.masked_dy  # by the max pool after it (pool.py)
        self.returned = self.masked_dy = None
        mask_here = self.fused_relu and not masked
        if mask_here:  # dy * (y > 0), written straight into the GEMM operand
            dy2 = self._buffer("dy", y.shape)
            mask = self._buffer("mask", y.shape, dtype=bool)
            dyh = channels_last(dy)  # dy may be any view: no reshape copy
        else:
            if self.activation is not None and not self.fused_relu:
                dy = self.activation.backward(dy)
            dy2 = xp.ascontiguousarray(channels_last(dy)).reshape(y.shape)  # (N*out, F)
        # Per part when split: its own weight and bias gradients (summed below in a fixed order) and
        # dpatches; every other array is shared, each part touching only its own samples' rows.
        ranges = batchsplit.bounds(n) if split else [(0, n)]
        count = len(ranges)
        grad_w, grad_b = self.grads["weight"].reshape(weight.shape), self.grads.get("bias")
        if split:
            grads_w = [self._buffer(f"dweight{h}", weight.shape) for h in range(count)]
            grads_b = [self._buffer(f"dbias{h}", (self.filters,)) for h in range(count)]
        else:
            grads_w, grads_b = [grad_w], [grad_b]
        ones = self._ones(len(dy2)) if self.use_bias else None
        taps = dpatches = dxp = None
        if self.needs_input_grad:
            # dpatches one kernel offset at a time, (N*out, C): each offset's block is contiguous, so the
            # slice-adds below run over whole rows (strided 32-float pieces of (N*out, k*k*C) took 2-3x
            # longer), and is added into dx while still in cache: all k*k blocks first, 9x larger, went
            # out to memory and back (benchmark CNN, conv2 backward in a step: 10.9 -> 10.4 ms on one
            # thread, 5.7 -> 5.2 ms split over 2).
            taps = weight.reshape(-1, channels, self.filters).transpose(0, 2, 1)  # (k*k, F, C) view
            name = "dpatches" if not split else "dpatches{}"
            dpatches = [
                self._buffer(name.format(h), ((b - a) * positions, channels)) for h, (a, b) in enumerate(ranges)
            ]
            dxp = self._buffer("dx", (n, *self.padded, channels), zero=not split)

        def part(h: int, a: int, b: int) -> None:  # samples [a, b)
            rows = slice(a * positions, b * positions)
            d = dy2[rows]
            if mask_here:
                grid = (b - a, *self.out_sizes, self.filters)
                xp.greater(y[rows], 0, out=mask[rows])
                xp.multiply(dyh[a:b], mask[rows].reshape(grid), out=d.reshape(grid))
            xp.dot(cols[rows].T, d, out=grads_w[h])
            if self.use_bias:
                xp.dot(ones[rows], d, out=grads_b[h])
            if dxp is None:
                return
            dp = dpatches[h]
            dxh = dxp[a:b]
            if split:
                dxh.fill(0)
            grid = (b - a, *self.out_sizes, channels)
            for k, (_, slices) in enumerate(self._offsets()):  # k*k slice-adds over the whole batch (or part)
                xp.dot(d, taps[k], out=dp)
                elementwise.add_(xp, dxh[(slice(None), *slices)], dp.reshape(grid))

        if split:
            batchsplit.run(n, part)
            for total, per_part in ((grad_w, grads_w), (grad_b, grads_b)):
                if total is None:  # no bias
                    continue
                xp.add(per_part[0], per_part[1], out=total)  # part 0 + part 1 + ...: a fixed order
                for extra in per_part[2:]:
                    total += extra
        else:
            part(0, 0, n)
        if dxp is None:
            return None  # type: ignore[return-value]
        inner = tuple(slice(a, a + s) for (a, _), s in zip(self.pads, in_shape[1:-1], strict=True))
        return channels_first(dxp[(slice(None), *inner)])

    def describe(self) -> str:
        parts = [f"{self.filters}", "x".join(map(str, self.kernel))]
        if any(s != 1 for s in self.stride):
            parts.append(f"stride {'x'.join(map(str, self.stride))}")
        if any(d != 1 for d in self.dilation):
            parts.append(f"dilation {'x'.join(map(str, self.dilation))}")
        parts.append(str(self.padding))
        if self.activation is not None:
            parts.append(self.activation.name)
        return f"{self.name}({', '.join(parts)})"


def _conv_params(dims: int) -> type[Params]:
    size = int if dims == 1 else (int | tuple[int, int])
    kernel_help = "Kernel length." if dims == 1 else "Kernel (height, width); one int for a square kernel."

    class ConvParams(Params):
        filters: int = Field(..., gt=0, description="Number of output channels (filters).")
        kernel_size: size = Field(..., description=kernel_help)  # type: ignore[valid-type]
        stride: size = Field(1, description="Step between output positions.")  # type: ignore[valid-type]
        padding: Padding = Field(
            "valid",
            description="valid (no padding), same (output size = ceil(input / stride), zeros added), "
            "or a number of zeros added on each side.",
        )
        dilation: size = Field(1, description="Spacing between kernel taps (1 = a plain convolution).")  # type: ignore[valid-type]
        activation: Literal[ACTIVATION_NAMES] | None = Field(  # type: ignore[valid-type]
            None, description="Shorthand for an activation layer right after this one (null = none)."
        )
        use_bias: bool = Field(True, description="Add a learned bias per filter.")
        init: Init = Field("he_uniform", description="Weight initialiser (fan_in = kernel size x input channels).")

        @model_validator(mode="after")
        def _positive(self):
            for key in ("kernel_size", "stride", "dilation"):
                value = getattr(self, key)
                if any(v < 1 for v in ((value,) if isinstance(value, int) else value)):
                    raise ValueError(f"{key} must be at least 1, got {value}")
            if isinstance(self.padding, int) and self.padding < 0:
                raise ValueError(f"padding must be 'valid', 'same' or a number >= 0, got {self.padding}")
            return self

    return ConvParams


@LAYERS.register("conv2d")
class Conv2D(_Conv):
    """y[n, f, i, j] = sum over c, a, b of x_pad[n, c, i*s + a*d, j*s + b*d] * weight[a, b, c, f] + bias[f]; inputs (C, H, W)."""

    dims = 2
    Params = _conv_params(2)


@LAYERS.register("conv1d")
class Conv1D(_Conv):
    """y[n, f, i] = sum over c, a of x_pad[n, c, i*s + a*d] * weight[a, c, f] + bias[f]; inputs (C, L)."""

    dims = 1
    Params = _conv_params(1)
