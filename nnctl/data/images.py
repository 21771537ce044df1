"""Data sources whose samples keep their shape: images (C, H, W) and signals (C, L).

- `digits_images`: the shipped digits as 1x8x8 images (the `digits` source keeps the flat 64 features).
- `image_npz`: an .npz archive like the `npz` source, but x keeps its sample shape (with a layout option).
- `image_csv`: a CSV file like the `csv` source, each row's features reshaped to a declared `shape:`.
- `image_folder`: PNG/JPEG files, one sub-folder per class, read with Pillow (optional extra `images`).
- `signal_shapes`: a synthetic 1-D classification set: a pulse, triangle, sine burst or step at a
  random position in noise, so conv1d has something to find.
"""

from __future__ import annotations

import dataclasses
import warnings
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from nnctl.data.csvfile import describe_path, load_csv
from nnctl.data.dataset import Dataset
from nnctl.data.npzfile import load_npz, read_npz
from nnctl.data.sources import _TASK, BUILTIN, Source
from nnctl.data.targets import TaskChoice
from nnctl.errors import DataError
from nnctl.registry import DATA_SOURCES
from nnctl.registry import Params as BaseParams


def _with_shape(dataset: Dataset, shape: tuple[int, ...]) -> Dataset:
    """The same data set with every sample reshaped to `shape` (feature names dropped: pixels have none)."""
    return dataclasses.replace(dataset, x=dataset.x.reshape((len(dataset.x), *shape)), feature_names=[])


@DATA_SOURCES.register("digits_images")
class DigitsImages(Source):
    """UCI handwritten digits as 1797 images of shape (1, 8, 8), pixels 0..16, 10 classes (for conv2d)."""

    def load(self, rng: np.random.Generator) -> Dataset:
        return _with_shape(BUILTIN["digits"]().load(rng), (1, 8, 8))


# --- .npz arrays that keep their shape -----------------------------------------------------------

Layout = Literal["auto", "nchw", "nhwc", "nhw", "ncl", "nlc", "nl"]
_LAYOUTS = {  # layout -> (x's number of axes, transpose to channel-first, add a channel axis)
    "nchw": (4, None, False),
    "nhwc": (4, (0, 3, 1, 2), False),
    "nhw": (3, None, True),
    "ncl": (3, None, False),
    "nlc": (3, (0, 2, 1), False),
    "nl": (2, None, True),
}


def _stored_shape(path: str | Path) -> tuple[int, ...] | None:
    """Shape of array x (or x_train/x_val/x_test, without the sample axis) read from its .npy header only."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            for key in ("x", "x_train", "x_val", "x_test"):
                if f"{key}.npy" in names:
                    with archive.open(f"{key}.npy") as f:
                        version = np.lib.format.read_magic(f)
                        read = (
                            np.lib.format.read_array_header_1_0
                            if version == (1, 0)
                            else np.lib.format.read_array_header_2_0
                        )
                        shape, _, _ = read(f)
                    return (len(shape),) + tuple(shape[1:])
    except (OSError, zipfile.BadZipFile, ValueError, KeyError):
        pass
    # A header this cannot read (or no x at all): load the arrays once more; load_npz reports real problems.
    arrays = read_npz(path)
    for key in ("x", "x_train", "x_val", "x_test"):
        if key in arrays:
            return (arrays[key].ndim,) + arrays[key].shape[1:]
    return None


@DATA_SOURCES.register("image_npz")
class ImageNpz(Source):
    """An .npz archive of images (N, C, H, W) or signals (N, C, L), same keys as `npz`; samples keep their shape."""

    class Params(BaseParams):
        path: str = Field(..., min_length=1, description=".npz file, relative to the current directory.")
        task: TaskChoice = Field("auto", description=_TASK)
        layout: Layout = Field(
            "auto",
            description="Axes of x: nchw / ncl (channel-first), nhwc / nlc (channel-last, transposed on load), "
            "nhw / nl (no channel axis: one channel is added); auto = nchw for 4-D x, ncl for 3-D x.",
        )

    def load(self, rng: np.random.Generator) -> Dataset:
        p = self.settings
        dataset = load_npz(p.path, p.task)  # every check of the npz source; x comes back flat (N, F)
        stored = _stored_shape(p.path)
        ndim, sample = (stored[0], stored[1:]) if stored else (2, dataset.x.shape[1:])
        layout = p.layout if p.layout != "auto" else {4: "nchw", 3: "ncl"}.get(ndim)
        if layout is None or _LAYOUTS[layout][0] != ndim:
            want = (
                f"layout {p.layout!r} needs x with {_LAYOUTS[layout][0]} axes"
                if layout
                else ("image_npz needs x of shape (N, C, H, W) or (N, C, L), or a layout option (nhw, nl, ...)")
            )
            raise DataError(
                f"x in {describe_path(p.path)} has shape (N, {', '.join(map(str, sample))}): {want}. "
                "For flat feature vectors use the `npz` source."
            )
        _, order, add_channel = _LAYOUTS[layout]
        x = dataset.x.reshape((len(dataset.x), *sample))
        if order is not None:
            x = np.ascontiguousarray(x.transpose(order))
        if add_channel:
            x = x[:, None]
        return dataclasses.replace(dataset, x=x, feature_names=[])


# --- CSV rows with a declared shape --------------------------------------------------------------


@DATA_SOURCES.register("image_csv")
class ImageCsv(Source):
    """A CSV file like `csv` whose feature columns, in order, are one image or signal of a declared `shape`."""

    class Params(BaseParams):
        path: str = Field(
            ..., min_length=1, description="CSV file, relative to the current directory; .gz is read as gzip."
        )
        target: str = Field(..., min_length=1, description="Name of the target column in the header row.")
        shape: list[int] = Field(
            ...,
            min_length=2,
            max_length=3,
            description="Shape of one sample, channel-first: [C, H, W] for images, [C, L] for signals. The feature "
            "columns fill it in row-major order.",
        )
        task: TaskChoice = Field("auto", description=_TASK)
        delimiter: str = Field(",", min_length=1, max_length=1, description="Field separator, one character.")

        @field_validator("shape")
        @classmethod
        def _positive(cls, shape: list[int]) -> list[int]:
            if any(s < 1 for s in shape):
                raise ValueError(f"every entry must be at least 1, got {shape}")
            return shape

    def load(self, rng: np.random.Generator) -> Dataset:
        p = self.settings
        dataset = load_csv(p.path, p.target, p.task, p.delimiter)
        size = int(np.prod(p.shape))
        if dataset.x.shape[1] != size:
            raise DataError(
                f"CSV file {describe_path(p.path)} has {dataset.x.shape[1]} feature columns, but shape {p.shape} "
                f"needs {size}. Fix shape: or the file's columns."
            )
        return _with_shape(dataset, tuple(p.shape))


# --- a folder of image files ---------------------------------------------------------------------

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _pillow():
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError(
            "the image_folder source reads PNG/JPEG files with Pillow, which is not installed. Install the optional "
            "extra: pip install 'nnctl[images]' (or pip install pillow)."
        ) from None
    return Image, UnidentifiedImageError


@DATA_SOURCES.register("image_folder")
class ImageFolder(Source):
    """Image files (PNG, JPEG, ...) in one sub-folder per class; pixels 0..255 as (C, H, W). Needs Pillow."""

    class Params(BaseParams):
        path: str = Field(..., min_length=1, description="Folder with one sub-folder of images per class.")
        color: Literal["auto", "grayscale", "rgb"] = Field(
            "auto", description="grayscale (1 channel), rgb (3 channels), or auto: grayscale if every image is."
        )
        size: tuple[int, int] | None = Field(
            None,
            description="[height, width] to resize every image to; null = every image must already have the same size.",
        )

    def load(self, rng: np.random.Generator) -> Dataset:
        p = self.settings
        image_cls, unidentified = _pillow()
        root = Path(p.path)
        if not root.is_dir():
            raise DataError(f"image folder {describe_path(root)} does not exist or is not a folder.")
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not classes:
            raise DataError(
                f"image folder {describe_path(root)} has no sub-folders; put the images of each class in their own "
                "sub-folder (e.g. cats/, dogs/)."
            )
        files: list[tuple[Path, int]] = []
        for label, name in enumerate(classes):
            found = sorted(f for f in (root / name).iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(
                    f"class folder {root / name} has no image files ({', '.join(sorted(IMAGE_SUFFIXES))}); every "
                    "class needs at least one image. Remove the empty folder or add images to it."
                )
            files += [(f, label) for f in found]

        images = []
        bomb = (image_cls.DecompressionBombError, image_cls.DecompressionBombWarning)
        for path, _ in files:
            try:
                with warnings.catch_warnings():  # Pillow only warns below twice its pixel limit: refuse those too
                    warnings.simplefilter("error", image_cls.DecompressionBombWarning)
                    with image_cls.open(path) as img:
                        img.load()
                        images.append(img.copy())
            except bomb as exc:
                raise DataError(
                    f"image file {path} declares too many pixels ({exc}); nnctl does not decode it. "
                    "Resize or remove the file."
                ) from None
            except (unidentified, OSError, ValueError, SyntaxError, MemoryError) as exc:
                raise DataError(f"cannot read image file {path}: {exc}. Remove or replace the file.") from None
        gray = p.color == "grayscale" or (
            p.color == "auto" and all(im.mode in ("1", "L", "I", "I;16", "F") for im in images)
        )
        mode = "L" if gray else "RGB"
        arrays = []
        first = None
        for (path, _), img in zip(files, images, strict=True):
            img = img.convert(mode)
            if p.size is not None:
                img = img.resize((p.size[1], p.size[0]), image_cls.BILINEAR)
            elif first is None:
                first = (path, img.size)
            elif img.size != first[1]:
                raise DataError(
                    f"images in {root} have different sizes: {first[0]} is {first[1][0]}x{first[1][1]} (width x height) "
                    f"but {path} is {img.size[0]}x{img.size[1]}. Set size: [height, width] to resize them all."
                )
            a = np.asarray(img, dtype=np.float64)
            arrays.append(a[None] if gray else a.transpose(2, 0, 1))  # (C, H, W)
        x = np.stack(arrays)
        y = np.array([label for _, label in files], dtype=np.int64)
        return Dataset(x, y, "classification", [], classes, ["label"])


# --- a synthetic signal set ----------------------------------------------------------------------

SIGNAL_CLASSES = ["pulse", "triangle", "sine_burst", "step"]


@DATA_SOURCES.register("signal_shapes")
class SignalShapes(Source):
    """Synthetic signals (1, L): a pulse, triangle, sine burst or step at a random place in gaussian noise (4 classes)."""

    class Params(BaseParams):
        samples: int = Field(1200, ge=4, le=1_000_000, description="Number of signals (classes balanced).")
        length: int = Field(128, ge=32, le=100_000, description="Samples per signal.")
        noise: float = Field(
            0.3, ge=0, le=5, description="Standard deviation of the gaussian noise (shape amplitude ~1)."
        )

    def load(self, rng: np.random.Generator) -> Dataset:
        p = self.settings
        n, length = p.samples, p.length
        y = np.arange(n) % len(SIGNAL_CLASSES)
        rng.shuffle(y)
        t = np.arange(length)[None, :]  # (1, L)
        width = rng.uniform(0.08, 0.2, n)[:, None] * length  # (N, 1)
        start = rng.uniform(0, 1, n)[:, None] * (length - width)
        amplitude = rng.uniform(0.7, 1.3, n)[:, None]
        u = (t - start) / width  # position inside the shape, 0..1
        inside = (u >= 0) & (u < 1)
        shapes = {
            0: inside * 1.0,  # rectangular pulse
            1: inside * (1 - np.abs(2 * u - 1)),  # triangle
            2: inside * np.sin(2 * np.pi * 3 * u),  # three periods of a sine
            3: (u >= 0) * 1.0 - 0.5,  # a step up (from -0.5 to 0.5)
        }
        x = np.zeros((n, length))
        for label, wave in shapes.items():
            rows = y == label
            x[rows] = wave[rows]
        x = amplitude * x + p.noise * rng.standard_normal((n, length))
        return Dataset(x[:, None, :], y.astype(np.int64), "classification", [], list(SIGNAL_CLASSES), ["shape"])
