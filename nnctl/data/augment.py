"""Random transforms of training batches, configured as `data.augment: [...]` and applied in order.

Each augmentation is called as `x_new = augmentation(x, rng)` on a training batch (N, C, H, W) or
(N, C, L) (noise also on flat (N, F) batches). Every sample is transformed with probability `p`,
with its own random parameters; everything is vectorised over the batch, every draw comes from the
given Generator (so a seed fixes the batches), and the input array is never written to. The trainer
applies them to training batches only: validation, `eval` and `predict` never see augmentation.

Geometry is channel-first as the data: "horizontal" is the last axis (width, or a signal's time),
"vertical" the one before it (height). Pixels that come from outside the input get `fill`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field, model_validator

from nnctl.errors import DataError
from nnctl.registry import AUGMENTATIONS, Component, Params

Range = float | tuple[float, float]

_P = Field(0.5, ge=0, le=1, description="Probability that a sample is transformed (each sample drawn independently).")
_FILL = Field(0.0, description="Value of pixels that come from outside the input.")


class Augmentation(Component):
    """Base: picks the samples to transform with probability p, then `_apply`s to those only."""

    # Sample ranks it accepts: 1 = signals (C, L), 2 = images (C, H, W); None = any shape, flat included.
    spatial: tuple[int, ...] | None = (1, 2)

    @property
    def name(self) -> str:
        return getattr(self, "registered_name", type(self).__name__.lower())

    def check(self, sample_shape: tuple[int, ...]) -> None:
        """DataError when this augmentation cannot transform samples of this shape."""
        if self.spatial is None or len(sample_shape) - 1 in self.spatial:
            return
        want = " or ".join({1: "signals (C, L)", 2: "images (C, H, W)"}[d] for d in self.spatial)
        raise DataError(
            f"augmentation '{self.name}' works on {want}, but the samples have shape {sample_shape}. Use an image or "
            "signal data source (digits_images, image_npz, image_csv with shape:, image_folder, signal_shapes) or "
            "remove it from data.augment."
        )

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.check(x.shape[1:])
        chosen = np.flatnonzero(rng.random(len(x)) < self.p)
        if len(chosen) == 0:
            return x
        out = x.copy()
        out[chosen] = self._apply(x[chosen], rng)
        return out

    def _apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The transform of the chosen samples (a new array of the same shape and dtype)."""
        raise NotImplementedError


def _span(value: Range, symmetric: bool) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        return (-float(value), float(value)) if symmetric else (float(value), float(value))
    return float(value[0]), float(value[1])


def _ordered(low_high: tuple[float, float], what: str) -> None:
    if low_high[0] > low_high[1]:
        raise ValueError(f"{what}: the range [{low_high[0]}, {low_high[1]}] must be [low, high] with low <= high")


# --- geometry: one bilinear sampler for rotate, scale and translate -----------------------------


def affine(x: np.ndarray, matrix: np.ndarray, shift: np.ndarray, fill: float) -> np.ndarray:
    """out[n, :, p] = x[n, :, matrix[n] @ (p - centre) + centre - shift[n]], bilinear, `fill` outside.

    x (N, C, H, W); matrix (N, 2, 2) and shift (N, 2) act on (row, column) coordinates."""
    n, c, h, w = x.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")  # (H, W)
    m = matrix[:, :, :, None, None]
    sy = m[:, 0, 0] * yy + m[:, 0, 1] * xx + (cy - shift[:, 0, None, None])  # (N, H, W) source row
    sx = m[:, 1, 0] * yy + m[:, 1, 1] * xx + (cx - shift[:, 1, None, None])
    # One border of `fill` around the input; coordinates clipped onto it read `fill`.
    padded = np.full((n, c, h + 2, w + 2), fill, dtype=x.dtype)
    padded[:, :, 1:-1, 1:-1] = x
    sy = np.clip(sy + 1, 0, h + 1)
    sx = np.clip(sx + 1, 0, w + 1)
    y0, x0 = np.floor(sy).astype(np.intp), np.floor(sx).astype(np.intp)
    y1, x1 = np.minimum(y0 + 1, h + 1), np.minimum(x0 + 1, w + 1)
    wy, wx = (sy - y0).astype(x.dtype)[:, None], (sx - x0).astype(x.dtype)[:, None]  # (N, 1, H, W)
    flat = padded.reshape(n, c, -1)

    def at(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        index = (rows * (w + 2) + cols).reshape(n, 1, -1)
        return np.take_along_axis(flat, index, axis=2).reshape(n, c, h, w)

    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    return top * (1 - wy) + bottom * wy


def _as_images(x: np.ndarray) -> np.ndarray:
    """(N, C, L) signals as (N, C, 1, L) images, so one sampler serves both."""
    return x[:, :, None, :] if x.ndim == 3 else x


def _sample(x: np.ndarray, matrix: np.ndarray, shift: np.ndarray, fill: float) -> np.ndarray:
    return affine(_as_images(x), matrix, shift, fill).reshape(x.shape)


@AUGMENTATIONS.register("flip")
class Flip(Augmentation):
    """Mirror a sample: horizontal reverses the last axis (width, or time for signals), vertical the height."""

    class Params(Params):
        direction: Literal["horizontal", "vertical"] = Field(
            "horizontal", description="horizontal (left-right; reverses a signal in time) or vertical (up-down)."
        )
        p: float = _P

    def check(self, sample_shape):
        super().check(sample_shape)
        if self.direction == "vertical" and len(sample_shape) != 3:
            raise DataError(f"augmentation 'flip' with direction: vertical needs images (C, H, W), got {sample_shape}.")

    def _apply(self, x, rng):
        return x[..., ::-1] if self.direction == "horizontal" else x[..., ::-1, :]


@AUGMENTATIONS.register("random_crop")
class RandomCrop(Augmentation):
    """Pad by `padding` pixels of `fill` on every side, then cut a window of the original size at a random place."""

    class Params(Params):
        padding: int = Field(2, ge=1, description="Pixels added on each side before cropping (the largest shift).")
        fill: float = _FILL
        p: float = Field(1.0, ge=0, le=1, description=_P.description)

    def _apply(self, x, rng):
        n, c, *sizes = x.shape
        pad = self.padding
        padded = np.full((n, c, *(s + 2 * pad for s in sizes)), self.fill, dtype=x.dtype)
        padded[(slice(None), slice(None)) + tuple(slice(pad, pad + s) for s in sizes)] = x
        starts = rng.integers(0, 2 * pad + 1, size=(n, len(sizes)))  # (N, spatial axes)
        axes = tuple(range(2, 2 + len(sizes)))
        windows = sliding_window_view(padded, sizes, axis=axes)  # (N, C, *starts, *sizes), a view
        # Advanced indices on axes 0 and 2.. (split by C's slice) put N first: (N, C, *sizes).
        return windows[(np.arange(n), slice(None), *starts.T)]


@AUGMENTATIONS.register("translate")
class Translate(Augmentation):
    """Shift a sample by a random fraction of its size along each axis (bilinear; `fill` where it moved away)."""

    class Params(Params):
        fraction: Range = Field(
            0.1, description="Shift as a fraction of the size, drawn per axis: f means [-f, f]; or [low, high]."
        )
        fill: float = _FILL
        p: float = _P

        @model_validator(mode="after")
        def _range(self):
            _ordered(_span(self.fraction, True), "fraction")
            return self

    def _apply(self, x, rng):
        n = len(x)
        low, high = _span(self.fraction, True)
        sizes = np.array(_as_images(x).shape[2:], dtype=np.float64)
        shift = rng.uniform(low, high, size=(n, 2)) * sizes
        if x.ndim == 3:
            shift[:, 0] = 0.0  # signals move in time only
        return _sample(x, np.broadcast_to(np.eye(2), (n, 2, 2)), shift, self.fill)


@AUGMENTATIONS.register("scale")
class Scale(Augmentation):
    """Zoom about the centre by a random factor (> 1 zooms in, < 1 out, leaving a `fill` border); bilinear."""

    class Params(Params):
        factor: Range = Field(
            (0.9, 1.1), description="Zoom factor range [low, high]; one number is a fixed factor (1 = unchanged)."
        )
        fill: float = _FILL
        p: float = _P

        @model_validator(mode="after")
        def _range(self):
            span = _span(self.factor, False)
            _ordered(span, "factor")
            if span[0] <= 0:
                raise ValueError(f"factor must be positive, got {self.factor}")
            return self

    def _apply(self, x, rng):
        n = len(x)
        low, high = _span(self.factor, False)
        zoom = rng.uniform(low, high, size=n)
        matrix = np.zeros((n, 2, 2))
        matrix[:, 0, 0] = 1.0 if x.ndim == 3 else 1.0 / zoom  # signals are stretched in time only
        matrix[:, 1, 1] = 1.0 / zoom
        return _sample(x, matrix, np.zeros((n, 2)), self.fill)


@AUGMENTATIONS.register("rotate")
class Rotate(Augmentation):
    """Rotate an image about its centre by a random angle in degrees (counter-clockwise); bilinear, `fill` corners."""

    spatial = (2,)

    class Params(Params):
        degrees: Range = Field(15.0, description="Angle range in degrees: d means [-d, d]; or [low, high].")
        fill: float = _FILL
        p: float = _P

        @model_validator(mode="after")
        def _range(self):
            _ordered(_span(self.degrees, True), "degrees")
            return self

    def _apply(self, x, rng):
        n = len(x)
        low, high = _span(self.degrees, True)
        theta = np.deg2rad(rng.uniform(low, high, size=n))
        cos, sin = np.cos(theta), np.sin(theta)
        # Output pixel -> source pixel is the inverse rotation; rows grow downwards, hence the signs.
        matrix = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], 1)  # (N, 2, 2)
        return affine(x, matrix, np.zeros((n, 2)), self.fill)


@AUGMENTATIONS.register("noise")
class Noise(Augmentation):
    """Add gaussian noise (std), or set a fraction of values to low/high (salt and pepper)."""

    spatial = None

    class Params(Params):
        kind: Literal["gaussian", "salt_and_pepper"] = Field("gaussian", description="gaussian or salt_and_pepper.")
        std: float = Field(0.1, ge=0, description="gaussian: standard deviation of the added noise.")
        amount: float = Field(0.05, ge=0, le=1, description="salt_and_pepper: fraction of values replaced.")
        low: float | None = Field(None, description="salt_and_pepper: the 'pepper' value; null = the batch minimum.")
        high: float | None = Field(None, description="salt_and_pepper: the 'salt' value; null = the batch maximum.")
        p: float = _P

    def _apply(self, x, rng):
        if self.kind == "gaussian":
            dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
            noise = rng.standard_normal(x.shape, dtype=dtype)
            noise *= np.asarray(self.std, dtype=dtype)
            return x + noise
        low = x.min() if self.low is None else self.low
        high = x.max() if self.high is None else self.high
        draw = rng.random(x.shape)
        out = x.copy()
        out[draw < self.amount / 2] = low
        out[(draw >= self.amount / 2) & (draw < self.amount)] = high
        return out
