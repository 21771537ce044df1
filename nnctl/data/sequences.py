"""Sequence data sources: synthetic tasks for recurrent networks, and NPZ / CSV files of fixed-length series.

Layout: features (N, T, F) float; tokens (N, T) of integer ids stored as floats (an `embedding` layer
reads them; keep `data.normalize: none`, which would turn ids into fractions).
"""

from __future__ import annotations

import zipfile
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from nnctl.data.csvfile import describe_path, load_csv
from nnctl.data.dataset import Dataset
from nnctl.data.npzfile import load_npz
from nnctl.data.sources import Source
from nnctl.data.targets import TaskChoice
from nnctl.errors import DataError
from nnctl.registry import DATA_SOURCES
from nnctl.registry import Params as BaseParams

# --- synthetic tasks ---------------------------------------------------------------------------


@DATA_SOURCES.register("adding_problem")
class AddingProblem(Source):
    """Adding problem (Hochreiter & Schmidhuber 1997): sum the two marked values of a (T, 2) sequence.

    Channel 0 holds values uniform in [0, 1], channel 1 marks one position in the first half and one
    in the second half. Always predicting 1 scores MSE 1/6 = 0.167; solving it means remembering the
    first marked value over T/2 steps or more.
    """

    class Params(BaseParams):
        samples: int = Field(10000, ge=2, le=1_000_000, description="Number of sequences.")
        length: int = Field(50, ge=2, le=10_000, description="Time steps T per sequence.")

    def load(self, rng: np.random.Generator) -> Dataset:
        n, t = self.settings.samples, self.settings.length
        x = np.zeros((n, t, 2))
        x[:, :, 0] = rng.random((n, t))
        half = t // 2
        first = rng.integers(0, half, n)
        second = rng.integers(half, t, n)
        rows = np.arange(n)
        x[rows, first, 1] = 1.0
        x[rows, second, 1] = 1.0
        y = (x[rows, first, 0] + x[rows, second, 0])[:, None]
        return Dataset(x, y, "regression", ["value", "marker"], target_names=["sum"])


@DATA_SOURCES.register("sine_wave")
class SineWave(Source):
    """Next-value regression: given T samples of a sine wave (random period, phase and amplitude), predict the next.

    x (T, 1) holds a * sin(2 pi t / period + phase) + noise for t = 0..T-1; the target is the noise-free
    value at t = T.
    """

    class Params(BaseParams):
        samples: int = Field(2000, ge=2, le=1_000_000, description="Number of sequences.")
        length: int = Field(20, ge=2, le=10_000, description="Time steps T per sequence.")
        min_period: float = Field(6.0, gt=2, description="Shortest period, in time steps.")
        max_period: float = Field(30.0, gt=2, description="Longest period, in time steps.")
        noise: float = Field(0.0, ge=0, description="Standard deviation of Gaussian noise added to the inputs.")

        @model_validator(mode="after")
        def _periods_in_order(self):
            if self.min_period > self.max_period:
                raise ValueError(f"min_period ({self.min_period}) must not exceed max_period ({self.max_period})")
            return self

    def load(self, rng: np.random.Generator) -> Dataset:
        p = self.settings
        n, t = p.samples, p.length
        period = rng.uniform(p.min_period, p.max_period, (n, 1))
        phase = rng.uniform(0, 2 * np.pi, (n, 1))
        amplitude = rng.uniform(0.5, 1.0, (n, 1))
        wave = amplitude * np.sin(2 * np.pi * np.arange(t + 1) / period + phase)  # (N, T + 1)
        x = wave[:, :t] + p.noise * rng.standard_normal((n, t))
        return Dataset(x[:, :, None], wave[:, t:], "regression", ["value"], target_names=["next"])


@DATA_SOURCES.register("temporal_order")
class TemporalOrder(Source):
    """Sequence classification where position matters (Hochreiter & Schmidhuber 1997, experiment 6a).

    Each sequence is random distractor symbols with two relevant symbols, each X or Y, one in the first
    half and one in the second half; the class is their order: XX, XY, YX or YY. XY and YX hold the same
    symbols, so only the order tells them apart. Ids: 0 = X, 1 = Y, 2.. = distractors.
    """

    class Params(BaseParams):
        samples: int = Field(2000, ge=4, le=1_000_000, description="Number of sequences.")
        length: int = Field(20, ge=4, le=10_000, description="Time steps T per sequence.")
        distractors: int = Field(4, ge=1, le=1000, description="Number of distractor symbols.")
        encoding: Literal["tokens", "one_hot"] = Field(
            "one_hot",
            description="tokens: x (T,) of symbol ids, for an embedding layer; one_hot: x (T, symbols) of 0/1.",
        )

    def load(self, rng: np.random.Generator) -> Dataset:
        p = self.settings
        n, t, vocab = p.samples, p.length, p.distractors + 2
        ids = rng.integers(2, vocab, (n, t))
        half = t // 2
        first, second = rng.integers(0, half, n), rng.integers(half, t, n)
        a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
        rows = np.arange(n)
        ids[rows, first] = a
        ids[rows, second] = b
        y = (2 * a + b).astype(np.int64)
        classes = ["XX", "XY", "YX", "YY"]
        symbols = ["X", "Y"] + [f"d{k}" for k in range(p.distractors)]
        if p.encoding == "tokens":
            return Dataset(ids.astype(np.float64), y, "classification", [f"t{k}" for k in range(t)], classes)
        x = np.zeros((n, t, vocab))
        np.put_along_axis(x, ids[:, :, None], 1.0, axis=2)
        return Dataset(x, y, "classification", symbols, classes)


# --- files -------------------------------------------------------------------------------------

_TASK = "classification, regression, or auto: text labels or all-integer values are classes, other numbers a regression target."


def _reshape(dataset: Dataset, shape: tuple[int, ...], where: str, how: str) -> Dataset:
    """The dataset with samples of `shape` (row-major), or a DataError saying what does not fit."""
    n, size = len(dataset.x), dataset.num_features
    if int(np.prod(shape)) != size:
        raise DataError(f"{where} has {size} values per sample, which do not fit shape {list(shape)}; {how}")
    x = dataset.x.reshape((n,) + shape)
    names = list(dataset.feature_names) if len(shape) == 1 else [f"f{j}" for j in range(shape[-1])]
    return Dataset(x, dataset.y, dataset.task, names, dataset.class_names, dataset.target_names, dataset.splits)


def _stored_sample_shape(path: str) -> tuple[int, ...]:
    """Shape of one sample of x (or x_train ...) in an .npz, read from the array header only."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        for key in ("x", "x_train", "x_val", "x_test"):
            if f"{key}.npy" in names:
                with archive.open(f"{key}.npy") as f:
                    version = np.lib.format.read_magic(f)
                    reader = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, _ = reader(f)
                return tuple(int(d) for d in shape[1:])
    raise DataError(f"{describe_path(path)} has no array x or x_train.")  # load_npz has said so already


@DATA_SOURCES.register("sequence_npz")
class SequenceNpz(Source):
    """An .npz archive like the npz source's, keeping the sample shape: x (N, T, F) features or (N, T) token ids."""

    class Params(BaseParams):
        path: str = Field(..., min_length=1, description=".npz file, relative to the current directory.")
        task: TaskChoice = Field("auto", description=_TASK)
        shape: list[int] | None = Field(
            None,
            min_length=1,
            max_length=3,
            description="Reshape each sample (row-major) to this shape, e.g. [50, 1] for x stored as (N, 50); "
            "null keeps the stored shape.",
        )

    def load(self, rng: np.random.Generator) -> Dataset:
        p = self.settings
        dataset = load_npz(p.path, p.task)  # every check of the npz source; x comes back flat
        shape = tuple(p.shape) if p.shape else _stored_sample_shape(p.path)
        if not shape:
            raise DataError(
                f"x in {describe_path(p.path)} holds one value per sample; sequences are (N, T) token ids or "
                "(N, T, F) features (or give shape: [T, F] to reshape)."
            )
        return _reshape(dataset, shape, describe_path(p.path), "fix data.source.shape.")


@DATA_SOURCES.register("sequence_csv")
class SequenceCsv(Source):
    """A CSV with a header row, one fixed-length series per row: a target column and T * F value columns.

    Values are read in row order as time-major (t0 f0, t0 f1, ..., t1 f0, ...) and reshaped to `shape`.
    """

    class Params(BaseParams):
        path: str = Field(
            ..., min_length=1, description="CSV file, relative to the current directory; .gz is read as gzip."
        )
        target: str = Field(..., min_length=1, description="Name of the target column in the header row.")
        shape: list[int] = Field(
            ...,
            min_length=1,
            max_length=2,
            description="Shape of one series: [T, F] (T steps of F features) or [T] (T token ids).",
        )
        task: TaskChoice = Field("auto", description=_TASK)
        delimiter: str = Field(",", min_length=1, max_length=1, description="Field separator, one character.")

        @model_validator(mode="after")
        def _positive(self):
            if any(d <= 0 for d in self.shape):
                raise ValueError(f"shape must hold positive sizes, got {self.shape}")
            return self

    def load(self, rng: np.random.Generator) -> Dataset:
        p = self.settings
        dataset = load_csv(p.path, p.target, p.task, p.delimiter)
        return _reshape(
            dataset,
            tuple(p.shape),
            f"CSV file {describe_path(p.path)}",
            "every row needs one column per value of shape plus the target column.",
        )
