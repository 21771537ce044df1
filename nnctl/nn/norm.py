"""Normalization layers: batch_norm, batch_renorm, layer_norm, instance_norm, group_norm.

Inputs are channel-first: (N, F) features, (N, C, L) signals, (N, C, H, W) images; internally a
batch is viewed as (N, C, S) with S the product of the spatial sizes (1 for features). Every layer
has a learned per-channel scale `gamma` and shift `beta`: y = gamma * x_hat + beta.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from nnctl.errors import ConfigError
from nnctl.nn.layer import Layer
from nnctl.registry import LAYERS, Params

_RANKS = {1: "(F,)", 2: "(C, L)", 3: "(C, H, W)"}


def _check_rank(layer: Layer, input_shape: tuple[int, ...], min_rank: int = 1) -> int:
    if len(input_shape) not in _RANKS or len(input_shape) < min_rank:
        allowed = ", ".join(v for k, v in _RANKS.items() if k >= min_rank)
        raise ConfigError(
            f"layer '{layer.name}' normalizes inputs of shape {allowed}, but gets samples of shape {input_shape}."
        )
    return input_shape[0]


def _normalize_backward(dxhat: np.ndarray, xhat: np.ndarray, inv: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """dx for x_hat = (x - mean) * inv with mean and variance taken over `axes`:
    dx = inv / M * (M dxhat - sum(dxhat) - x_hat sum(dxhat x_hat))."""
    m = int(np.prod([dxhat.shape[a] for a in axes]))
    total = dxhat.sum(axis=axes, keepdims=True)
    proj = (dxhat * xhat).sum(axis=axes, keepdims=True)
    return (dxhat * m - total - xhat * proj) * (inv / m)


class _Affine(Layer):
    """Shared parts: per-channel gamma/beta, the (N, C, S) view, and the affine backward."""

    eps: float

    def _affine_params(self, channels: int) -> None:
        self._param("gamma", np.ones(channels))
        self._param("beta", np.zeros(channels))

    def _view(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), self.input_shape[0], -1)  # (N, C, S)

    def _scale_shift(self, xhat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        y = xhat * self.params["gamma"][:, None] + self.params["beta"][:, None]
        return y.reshape(shape)

    def _affine_backward(self, dy: np.ndarray, xhat: np.ndarray) -> np.ndarray:
        dy3 = self._view(dy)
        self.xp.sum(dy3 * xhat, axis=(0, 2), out=self.grads["gamma"])
        self.xp.sum(dy3, axis=(0, 2), out=self.grads["beta"])
        return dy3 * self.params["gamma"][:, None]  # d loss / d x_hat


@LAYERS.register("batch_norm")
class BatchNorm(_Affine):
    """x_hat = (x - mean_B) / sqrt(var_B + eps) per channel over the batch (and positions); eval uses running statistics."""

    class Params(Params):
        momentum: float = Field(
            0.9,
            ge=0,
            lt=1,
            description="Share of the old running statistic kept at each step (Keras convention; PyTorch's momentum is 1 - this).",
        )
        eps: float = Field(1e-5, gt=0, description="Added to the variance for stability.")
        sync: bool = Field(
            False,
            description="With data-parallel workers (nnctl train --workers N): batch statistics over the global batch "
            "of all ranks, as SyncBatchNorm (two Allreduces forward, one backward). Default: each rank's own slice, "
            "as PyTorch DDP. One process: no effect.",
        )

    def setup(self):
        super().setup()
        self.comm = None  # set by the trainer for sync layers in a data-parallel world (allreduce, size)
        self._counts: tuple[int, float] | None = None

    def _build(self, input_shape, rng):
        channels = _check_rank(self, input_shape)
        self._affine_params(channels)
        self._register_buffer("running_mean", np.zeros(channels, dtype=self.dtype))
        self._register_buffer("running_var", np.ones(channels, dtype=self.dtype))
        return input_shape

    def _synced(self) -> bool:
        return self.comm is not None and self.comm.size > 1

    def _batch_stats(self, x3: np.ndarray):
        if self._synced():
            return self._global_stats(x3)
        mean = x3.mean(axis=(0, 2))
        xc = x3 - mean[:, None]
        var = (xc * xc).mean(axis=(0, 2))
        return mean, var, xc

    def _global_stats(self, x3: np.ndarray):
        """Mean and (biased) variance over the global batch: sums and count, then squared deviations, summed
        over the ranks in float64 (two passes, as the one-process statistics)."""
        channels, local = x3.shape[1], x3.shape[0] * x3.shape[2]
        buf = self.xp.empty(channels + 1)
        buf[:channels] = x3.sum(axis=(0, 2), dtype=np.float64)
        buf[channels] = local
        self.comm.allreduce(buf)
        count = buf[channels]
        mean = (buf[:channels] / count).astype(self.dtype)
        xc = x3 - mean[:, None]
        squares = (xc * xc).sum(axis=(0, 2), dtype=np.float64)
        self.comm.allreduce(squares)
        self._counts = (local, count)
        return mean, (squares / count).astype(self.dtype), xc

    def _update_running(self, mean: np.ndarray, var: np.ndarray, count: int) -> None:
        m = self.momentum
        unbiased = var * (count / max(count - 1, 1))  # running variance estimates the population's
        self.buffers["running_mean"][...] = m * self.buffers["running_mean"] + (1 - m) * mean
        self.buffers["running_var"][...] = m * self.buffers["running_var"] + (1 - m) * unbiased

    def _eval_xhat(self, x3: np.ndarray) -> np.ndarray:
        inv = 1 / self.xp.sqrt(self.buffers["running_var"] + self.dtype.type(self.eps))
        return (x3 - self.buffers["running_mean"][:, None]) * inv[:, None]

    def forward(self, x, *, training):
        x3 = self._view(x)
        if not training:
            return self._scale_shift(self._eval_xhat(x3), x.shape)
        mean, var, xc = self._batch_stats(x3)
        inv = 1 / self.xp.sqrt(var + self.dtype.type(self.eps))
        xhat = xc * inv[:, None]
        self._update_running(mean, var, int(self._counts[1]) if self._synced() else x3.shape[0] * x3.shape[2])
        self._cache = (xhat, inv[:, None])
        return self._scale_shift(xhat, x.shape)

    def backward(self, dy):
        xhat, inv = self._take_cache()
        dxhat = self._affine_backward(dy, xhat)
        if self._synced():
            return self._global_backward(dxhat, xhat, inv).reshape(dy.shape)
        return _normalize_backward(dxhat, xhat, inv, (0, 2)).reshape(dy.shape)

    def _global_backward(self, dxhat: np.ndarray, xhat: np.ndarray, inv: np.ndarray) -> np.ndarray:
        """_normalize_backward with the sums over the global batch. This rank's dxhat is the gradient of
        its own slice's mean loss; the trainer later weights its parameter gradients by w = local / global
        count, so the sums are taken in global units (x w) and the result returned in this rank's (/ w)."""
        local, count = self._counts
        # The trainer's weight of this rank's gradients: its share of the batch (count, or loss weight).
        w = getattr(self.comm, "share", None)
        w = local / count if w is None else w
        channels = dxhat.shape[1]
        buf = self.xp.empty(2 * channels)
        buf[:channels] = dxhat.sum(axis=(0, 2), dtype=np.float64)
        buf[channels:] = (dxhat * xhat).sum(axis=(0, 2), dtype=np.float64)
        buf *= w
        self.comm.allreduce(buf)
        if w == 0:  # this rank's samples weigh nothing in the loss: its gradients are not used
            return self.xp.zeros_like(dxhat)
        buf /= w
        total = buf[:channels, None].astype(self.dtype)
        proj = buf[channels:, None].astype(self.dtype)
        m = self.dtype.type(count)
        return (dxhat * m - total - xhat * proj) * (inv / m)

    def describe(self) -> str:
        return "batch_norm(sync)" if getattr(self, "sync", False) else self.name


@LAYERS.register("batch_renorm")
class BatchRenorm(BatchNorm):
    """Batch renormalization (Ioffe 2017): x_hat = r (x - mean_B) / sigma_B + d, r and d clipped corrections toward running statistics."""

    class Params(Params):
        momentum: float = Field(0.9, ge=0, lt=1, description="Share of the old running statistic kept at each step.")
        eps: float = Field(1e-5, gt=0, description="Added to the variance for stability.")
        r_max: float = Field(3.0, ge=1, description="Final clip of r = sigma_B / sigma_running to [1/r_max, r_max].")
        d_max: float = Field(
            5.0, ge=0, description="Final clip of d = (mean_B - mean_running) / sigma_running to [-d_max, d_max]."
        )
        warmup_steps: int = Field(
            1000,
            ge=0,
            description="Training steps over which r_max grows from 1 and d_max from 0 (plain batch norm first).",
        )

    def _build(self, input_shape, rng):
        shape = super()._build(input_shape, rng)
        self._register_buffer("steps", np.zeros(1, dtype=np.float64))  # counts training steps for the warm-up
        return shape

    def limits(self) -> tuple[float, float]:
        """(r_max, d_max) at the current step of the warm-up."""
        done = 1.0 if self.warmup_steps == 0 else min(1.0, float(self.buffers["steps"][0]) / self.warmup_steps)
        return 1 + (self.r_max - 1) * done, self.d_max * done

    def forward(self, x, *, training):
        x3 = self._view(x)
        if not training:
            return self._scale_shift(self._eval_xhat(x3), x.shape)
        mean, var, xc = self._batch_stats(x3)
        eps = self.dtype.type(self.eps)
        sigma = self.xp.sqrt(var + eps)
        sigma_run = self.xp.sqrt(self.buffers["running_var"] + eps)
        r_max, d_max = self.limits()
        # r and d are treated as constants in backward (the paper's stop-gradient).
        r = self.xp.clip(sigma / sigma_run, 1 / r_max, r_max).astype(self.dtype)
        d = self.xp.clip((mean - self.buffers["running_mean"]) / sigma_run, -d_max, d_max).astype(self.dtype)
        xhat_b = xc / sigma[:, None]
        xhat = xhat_b * r[:, None] + d[:, None]
        self._update_running(mean, var, x3.shape[0] * x3.shape[2])
        self.buffers["steps"] += 1
        self._cache = (xhat, xhat_b, (1 / sigma)[:, None], r[:, None])
        return self._scale_shift(xhat, x.shape)

    def backward(self, dy):
        xhat, xhat_b, inv, r = self._take_cache()
        dxhat = self._affine_backward(dy, xhat) * r
        return _normalize_backward(dxhat, xhat_b, inv, (0, 2)).reshape(dy.shape)


@LAYERS.register("group_norm")
class GroupNorm(_Affine):
    """x_hat = (x - mean) / sqrt(var + eps) per sample over each group of channels (and positions); same in train and eval."""

    min_rank = 1

    class Params(Params):
        groups: int = Field(
            ...,
            ge=1,
            description="Number of channel groups; must divide the channels. 1 = layer norm, C = instance norm.",
        )
        eps: float = Field(1e-5, gt=0, description="Added to the variance for stability.")

    def _groups(self, channels: int) -> int:
        return self.groups

    def _build(self, input_shape, rng):
        channels = _check_rank(self, input_shape, self.min_rank)
        groups = self._groups(channels)
        if channels % groups:
            raise ConfigError(
                f"group_norm: groups: {groups} does not divide the {channels} channels of its input {input_shape}; "
                f"use a divisor of {channels}."
            )
        self.g = groups
        self._affine_params(channels)
        return input_shape

    def forward(self, x, *, training):
        n = len(x)
        xg = x.reshape(n, self.g, -1)  # channels of a group are contiguous in channel-first layout
        mean = xg.mean(axis=2, keepdims=True)
        xc = xg - mean
        var = (xc * xc).mean(axis=2, keepdims=True)
        inv = 1 / self.xp.sqrt(var + self.dtype.type(self.eps))
        xhat = xc * inv
        if training:
            self._cache = (xhat, inv)
        return self._scale_shift(xhat.reshape(n, self.input_shape[0], -1), x.shape)

    def backward(self, dy):
        xhat, inv = self._take_cache()
        n = len(dy)
        dxhat = self._affine_backward(dy, xhat.reshape(n, self.input_shape[0], -1)).reshape(xhat.shape)
        return _normalize_backward(dxhat, xhat, inv, (2,)).reshape(dy.shape)

    def describe(self) -> str:
        return f"{self.name}({self.g} groups)" if self.name == "group_norm" else self.name


@LAYERS.register("layer_norm")
class LayerNorm(GroupNorm):
    """x_hat = (x - mean) / sqrt(var + eps) per sample over all its values (Ba et al. 2016); group_norm with 1 group."""

    class Params(Params):
        eps: float = Field(1e-5, gt=0, description="Added to the variance for stability.")

    groups = 1  # not a parameter here: layer norm is group norm with one group


@LAYERS.register("instance_norm")
class InstanceNorm(GroupNorm):
    """x_hat per sample and channel over positions (Ulyanov et al. 2016); group_norm with one group per channel. Needs (C, L) or (C, H, W)."""

    min_rank = 2

    class Params(Params):
        eps: float = Field(1e-5, gt=0, description="Added to the variance for stability.")

    def _groups(self, channels: int) -> int:
        return channels
