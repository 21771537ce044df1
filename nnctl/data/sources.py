"""Data sources registered in DATA_SOURCES: Playground generators, generic CSV / NPZ, shipped real sets."""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np
from pydantic import Field, create_model, field_validator

from nnctl.data import playground
from nnctl.data.csvfile import load_csv
from nnctl.data.dataset import Dataset
from nnctl.data.features import FeatureName, compute_features
from nnctl.data.mapped import load_npy, load_shards
from nnctl.data.npzfile import load_npz
from nnctl.data.tabular import TableParams
from nnctl.data.targets import TableTask, TaskChoice
from nnctl.errors import DataError
from nnctl.registry import DATA_SOURCES, Component
from nnctl.registry import Params as BaseParams
from nnctl.resources import dataset_catalog, datasets_dir


class Source(Component):
    """Base for data sources: parameters declared in Params, validated once and kept as `self.settings`
    (and as attributes), per the registry's Component convention."""

    def load(self, rng: np.random.Generator) -> Dataset:
        raise NotImplementedError


# --- TensorFlow Playground -------------------------------------------------------------------


class PlaygroundParams(BaseParams):
    samples: int = Field(
        500, ge=2, le=1_000_000, description="Number of points; circle, gauss and spiral give each class half."
    )
    noise: float = Field(
        0.0,
        ge=0,
        le=50,
        description=(
            "The Playground's noise slider, 0..50; the generator receives noise / 100 as in the Playground. "
            "It shifts the point where the label is read (circle, xor, plane, multi_gauss: label noise), "
            "widens the clusters (gauss: variance 0.5 + 7 * noise / 100) or jitters the arms (spiral)."
        ),
    )
    features: list[FeatureName] = Field(
        ["x1", "x2"],  # pydantic copies a mutable default per instance
        min_length=1,
        description="Input features computed from the point (x1, x2), in this order, each at most once.",
    )

    @field_validator("features")
    @classmethod
    def _no_duplicates(cls, names: list[str]) -> list[str]:
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"feature {', '.join(repr(n) for n in twice)} listed more than once; list each once")
        return names


class _Playground(Source):
    """Shared load(): generate 2-D points, compute the selected features, map labels +1/-1 to 1/0."""

    Params = PlaygroundParams
    name: ClassVar[str]
    task: ClassVar[str] = "classification"

    def load(self, rng: np.random.Generator) -> Dataset:
        p = self.settings
        points, labels = playground.GENERATORS[self.name](p.samples, p.noise / 100, rng)
        x = compute_features(points, list(p.features))
        if self.task == "regression":
            return Dataset(x, labels[:, None], "regression", list(p.features), target_names=["y"], raw=points)
        y = (labels > 0).astype(np.int64)  # Playground -1 -> class 0, +1 -> class 1
        return Dataset(x, y, "classification", list(p.features), ["negative", "positive"], ["label"], raw=points)


@DATA_SOURCES.register("circle")
class Circle(_Playground):
    """Playground circle: positive inside radius 2.5, negative on the ring 3.5..5 around it (2-D)."""

    name = "circle"


@DATA_SOURCES.register("xor")
class Xor(_Playground):
    """Playground XOR: positive where x1 * x2 >= 0 (first and third quadrants), in [-5.3, 5.3]^2."""

    name = "xor"


@DATA_SOURCES.register("gauss")
class Gauss(_Playground):
    """Playground Gaussian: two blobs, positive around (2, 2) and negative around (-2, -2)."""

    name = "gauss"


@DATA_SOURCES.register("spiral")
class Spiral(_Playground):
    """Playground spiral: two interleaved spiral arms of radius up to 5, one per class."""

    name = "spiral"


@DATA_SOURCES.register("plane")
class Plane(_Playground):
    """Playground plane regression: y = (x1 + x2) / 10 on [-6, 6]^2."""

    name = "plane"
    task = "regression"


@DATA_SOURCES.register("multi_gauss")
class MultiGauss(_Playground):
    """Playground multi-Gaussian regression: six +/- bumps y = +/-max(0, 1 - d / 2) on [-6, 6]^2."""

    name = "multi_gauss"
    task = "regression"


# --- files given by the user -------------------------------------------------------------------

_TASK = (
    "classification, regression, or auto: text labels or all-integer values are classes, other "
    "numbers a regression target."
)


_TARGET = (
    "Name of the target column in the header row; a list of names for several regression targets (one output "
    "each) or, with task: multilabel, several 0/1 label columns."
)


@DATA_SOURCES.register("csv")
class Csv(Source):
    """A CSV file (or .csv.gz) with a header row: target column(s) and feature columns, numbers, categories,
    booleans, with blanks filled by `impute` (column types are inferred unless declared under `columns`)."""

    class Params(TableParams):
        path: str = Field(
            ..., min_length=1, description="CSV file, relative to the current directory; .gz is read as gzip."
        )
        target: str | list[str] = Field(..., min_length=1, description=_TARGET)
        task: TableTask = Field("auto", description=_TASK + " multilabel: several 0/1 target columns, one logit each.")
        delimiter: str = Field(",", min_length=1, max_length=1, description="Field separator, one character.")

    def load(self, rng: np.random.Generator) -> Dataset:
        p = self.settings
        return load_csv(p.path, p.target, p.task, p.delimiter, table=p)


@DATA_SOURCES.register("npz")
class Npz(Source):
    """A NumPy .npz archive with arrays x and y (optionally predefined splits); never unpickles."""

    class Params(BaseParams):
        path: str = Field(..., min_length=1, description=".npz file, relative to the current directory.")
        task: TaskChoice = Field("auto", description=_TASK)

    def load(self, rng: np.random.Generator) -> Dataset:
        return load_npz(self.settings.path, self.settings.task)


@DATA_SOURCES.register("npy")
class Npy(Source):
    """Features memory-mapped from an .npy file (data bigger than memory, read batch by batch), targets from another."""

    class Params(BaseParams):
        x: str = Field(..., min_length=1, description=".npy file of the features (N, ...), memory-mapped read-only.")
        y: str = Field(..., min_length=1, description=".npy file of the targets (N,) or (N, T), read into memory.")
        task: TaskChoice = Field("auto", description=_TASK)
        mmap: bool = Field(True, description="Map the features (read batch by batch); false reads them into memory.")

    def load(self, rng: np.random.Generator) -> Dataset:
        return load_npy(self.settings.x, self.settings.y, self.settings.task, self.settings.mmap)


@DATA_SOURCES.register("shards")
class Shards(Source):
    """A directory of .npy shards written by `nnctl convert` (features memory-mapped, read batch by batch)."""

    class Params(BaseParams):
        path: str = Field(..., min_length=1, description="The shard directory (with meta.json).")

    def load(self, rng: np.random.Generator) -> Dataset:
        return load_shards(self.settings.path)


# --- real data sets shipped with the package (datasets/datasets.yaml) ----------------------------


class _Builtin(Source):
    """Shared load(): read the shipped CSV through the same reader as the csv source."""

    file: ClassVar[str]
    target: ClassVar[str]
    task: ClassVar[TaskChoice] = "classification"
    class_names: ClassVar[list[str] | None] = None  # class order when it is not alphabetical

    def load(self, rng: np.random.Generator) -> Dataset:
        path = datasets_dir() / self.file
        if not path.is_file():
            where = (
                "the folder NNCTL_DATASETS names"
                if os.environ.get("NNCTL_DATASETS")
                else "nnctl's package data (a broken installation: reinstall nnctl)"
            )
            raise DataError(
                f"the shipped data file {path} is missing from {where}; set the environment variable "
                f"NNCTL_DATASETS to a folder holding {self.file}."
            )
        if isinstance(self.settings, TableParams):  # a table (`table: true`): columns, drop, features apply
            p = self.settings
            return load_csv(path, p.target, p.task, class_names=self.class_names, table=p)
        return load_csv(path, self.target, self.task, class_names=self.class_names)


def _table_params(entry: dict) -> type[TableParams]:
    """The params of a shipped table: the csv source's column declarations, with the entry's target and task."""
    return create_model(
        "Params",
        __base__=TableParams,
        target=(str | list[str], Field(entry["target"], min_length=1, description=_TARGET)),
        task=(TaskChoice, Field(entry.get("task", "classification"), description=_TASK)),
    )


def _register_builtins() -> dict[str, type[_Builtin]]:
    """One registered source per entry of datasets.yaml: adding a data set needs no code. An entry with
    `table: true` (categories, blanks) takes the csv source's `columns`, `drop`, `features`, `sample_weight`."""
    out = {}
    for name, entry in dataset_catalog().items():
        doc = f"{entry['description']} Origin: {entry['origin']}. Licence: {entry['licence']}."
        attrs = {
            "__doc__": doc,
            "__module__": __name__,
            "file": entry["file"],
            "target": entry["target"],
            "task": entry.get("task", "classification"),
            "class_names": entry.get("class_names"),
        }
        if entry.get("table"):
            attrs["Params"] = _table_params(entry)
        cls = type("".join(part.capitalize() for part in name.split("_")), (_Builtin,), attrs)
        out[name] = DATA_SOURCES.register(name)(cls)
    return out


BUILTIN: dict[str, type[_Builtin]] = _register_builtins()
