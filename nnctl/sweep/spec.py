"""The sweep file: a base experiment, an objective, a search space over dotted config paths, a strategy.

```yaml
name: xor_lr
base: ../xor.yaml                 # or `config: {...}` inline; paths are relative to this file
set: [train.epochs=30]            # fixed overrides for every trial (optional)
seed: 0                           # with the trial's parameters, fixes each trial's seed
objective: {metric: accuracy, split: val, goal: max}
strategy: random                  # grid | random | tpe
trials: 20                        # random and tpe
space:
  optimizer.lr: {loguniform: [1.0e-3, 0.3]}
  model.layers[0].units: {values: [4, 8, 16]}
```

Loading checks everything about the sweep itself; the trial configs are checked by the runner.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nnctl.errors import ConfigError
from nnctl.registry import suggest
from nnctl.yamlio import read_yaml

KINDS = ("values", "choice", "uniform", "loguniform", "int_uniform", "quniform")
GRID_LIMIT = 1000  # an int_uniform/quniform range enumerated by `grid` may not have more points


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Dimension(_Strict):
    """One axis of the search space: exactly one of the kinds, plus optional display labels."""

    values: list[Any] | None = Field(None, description="Grid points (random and tpe pick one of them).")
    choice: list[Any] | None = Field(None, description="A categorical choice (the same in every strategy).")
    uniform: tuple[float, float] | None = Field(None, description="[low, high], uniform.")
    loguniform: tuple[float, float] | None = Field(None, description="[low, high], uniform in log space, low > 0.")
    int_uniform: tuple[int, int] | None = Field(None, description="[low, high], integers, both ends included.")
    quniform: tuple[float, float, float] | None = Field(None, description="[low, high, q]: low, low+q, ... <= high.")
    labels: list[str] | None = Field(None, description="Names for values/choice items in tables and plots.")

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, value: Any) -> Any:
        return {"values": value} if isinstance(value, list) else value

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(KINDS)} (got {', '.join(given) or 'none'})")
        kind = given[0]
        if kind in ("values", "choice"):
            if not self.items:
                raise ValueError(f"{kind} needs at least one item")
            if self.labels is not None and len(self.labels) != len(self.items):
                raise ValueError(f"labels has {len(self.labels)} names for {len(self.items)} items")
        elif self.labels is not None:
            raise ValueError("labels go with values or choice")
        if kind in ("uniform", "loguniform", "int_uniform", "quniform"):
            low, high = getattr(self, kind)[:2]
            if not low < high:
                raise ValueError(f"{kind}: low must be below high, got [{low}, {high}]")
        if kind == "loguniform" and self.loguniform[0] <= 0:
            raise ValueError(f"loguniform: low must be > 0, got {self.loguniform[0]}")
        if kind == "quniform" and self.quniform[2] <= 0:
            raise ValueError(f"quniform: q must be > 0, got {self.quniform[2]}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def items(self) -> list[Any] | None:
        return self.values if self.values is not None else self.choice

    @property
    def finite(self) -> bool:
        return self.kind in ("values", "choice", "int_uniform", "quniform")

    @property
    def integral(self) -> bool:
        """A quniform range whose low, high and step are whole numbers: its values are integers."""
        return self.kind == "quniform" and all(float(v).is_integer() for v in self.quniform)

    def grid(self) -> list[Any]:
        """Every point, in order (values/choice items by index; ranges by value)."""
        kind = self.kind
        if kind in ("values", "choice"):
            return list(range(len(self.items)))
        if kind == "int_uniform":
            low, high = self.int_uniform
            points = list(range(low, high + 1))
        elif kind == "quniform":
            low, high, q = self.quniform
            points = [_qround(low + i * q) for i in range(int(math.floor((high - low) / q + 1e-9)) + 1)]
            if self.integral:  # [16, 128, 16] samples batch sizes: 48, not 48.0
                points = [int(p) for p in points]
        else:
            raise ValueError(f"a grid needs finite axes; {kind} is continuous: list the points with values: [...]")
        if len(points) > GRID_LIMIT:
            raise ValueError(f"{kind} has {len(points)} grid points (limit {GRID_LIMIT}); use values: [...]")
        return points

    def value(self, point: Any) -> Any:
        """The config value for a point (values/choice points are item indices)."""
        return copy.deepcopy(self.items[point]) if self.items is not None else point

    def label(self, point: Any) -> Any:
        if self.labels is not None:
            return self.labels[point]
        return self.value(point)

    def corners(self) -> list[Any]:
        """Points that exercise the axis' extremes: used to validate tpe sweeps before they start."""
        if self.items is not None:
            return list(range(len(self.items)))
        if self.kind == "quniform":
            return [self.grid()[0], self.grid()[-1]]
        return list(getattr(self, self.kind)[:2])


def _qround(x: float) -> float:
    return float(round(x, 12))


class Objective(_Strict):
    metric: str = Field("loss", description="loss, or a metric the config reports (accuracy, r2, ...).")
    split: Literal["val", "test", "train"] = Field("val", description="Split the objective is measured on.")
    goal: Literal["min", "max"] | None = Field(None, description="Default: min for loss, else the metric's.")
    cv: int | None = Field(
        None,
        ge=2,
        description="Score each trial by k-fold cross-validation (as `nnctl cv`): the mean of the metric over the "
        "held-out folds of the config's train + val rows, each fold a run under the trial's folder. split: val.",
    )

    @model_validator(mode="after")
    def _cv_on_val(self) -> Objective:
        if self.cv is not None and self.split != "val":
            raise ValueError(f"objective.cv scores the held-out folds, so split must be val (got {self.split})")
        return self

    @property
    def column(self) -> str:
        """The per-epoch column that tracks this objective (pruning uses it)."""
        return "train_loss" if self.split == "train" and self.metric == "loss" else f"val_{self.metric}"


class Pruning(_Strict):
    type: Literal["median"] = "median"
    warmup_epochs: int = Field(3, ge=0, description="Never prune before this many epochs.")
    startup_trials: int = Field(4, ge=1, description="Prune only once this many trials have completed.")


class Plot(_Strict):
    x: str = Field(description="Space path on the x axis (e.g. data.train_fraction).")
    series: str | None = Field(None, description="Space path with one line per value.")
    y: str | None = Field(None, description="Column of trials.csv to plot (default: test_<objective metric>).")
    log_x: bool = False


class SweepSpec(_Strict):
    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$", description="Folder under runs/sweeps/."
    )
    base: str | None = Field(None, description="Experiment YAML, relative to the sweep file.")
    config: dict | None = Field(None, description="The experiment inline (instead of base).")
    set: list[str] = Field(default_factory=list, description="--set overrides applied to every trial.")
    seed: int = Field(0, ge=0)
    objective: Objective = Field(default_factory=Objective)
    strategy: Literal["grid", "random", "tpe"] = "grid"
    trials: int | None = Field(None, ge=1, description="Number of trials (random and tpe).")
    batch: int = Field(4, ge=1, description="tpe: trials proposed at once (the useful parallelism).")
    startup_trials: int = Field(8, ge=1, description="tpe: random trials before the model takes over.")
    pruning: Pruning | None = Field(None, description="tpe: stop weak trials early (needs optuna).")
    space: dict[str, Dimension] = Field(min_length=1)
    plot: Plot | None = None
    base_dir: str | None = Field(None, description="Where plugins are found (filled in when resolved).")

    @field_validator("space")
    @classmethod
    def _paths(cls, space: dict[str, Dimension]) -> dict[str, Dimension]:
        from nnctl.config import parse_path

        for key in space:
            parse_path(key)
        return space

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        if (self.base is None) == (self.config is None):
            raise ValueError("give either base: (a config file) or config: (inline), not both or neither")
        if self.strategy == "grid":
            if self.trials is not None:
                raise ValueError("strategy grid runs every combination; remove trials (or use strategy: random)")
            for key, dim in self.space.items():
                if not dim.finite:
                    raise ValueError(f"space.{key}: a grid needs finite axes; {dim.kind} is continuous")
        elif self.trials is None:
            raise ValueError(f"strategy {self.strategy} needs trials: N")
        if self.pruning is not None and self.strategy != "tpe":
            raise ValueError("pruning works with strategy: tpe")
        if self.pruning is not None and self.objective.cv is not None:
            raise ValueError("pruning follows one training curve; it does not work with objective.cv")
        if self.plot is not None:
            for key in (self.plot.x, self.plot.series):
                if key is not None and key not in self.space:
                    raise ValueError(f"plot: '{key}' is not a space path.{suggest(key, list(self.space))}")
        return self


def load_sweep(path: str | Path) -> SweepSpec:
    path = Path(path)
    raw, lines = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping (name, base, objective, strategy, space ...).")
    return parse_sweep(raw, str(path), lines)


def parse_sweep(raw: dict, source: str = "<sweep>", lines: dict | None = None) -> SweepSpec:
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as exc:
        messages = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if p not in KINDS or err["type"] != "extra_forbidden")
            where = _line(lines or {}, loc)
            text = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                fields = _fields_at(loc[:-1])
                text = f"unknown key '{loc[-1]}'.{suggest(str(loc[-1]), fields)} Valid keys here: {', '.join(fields)}."
            dotted = ".".join(str(p) for p in loc) or "(top level)"
            messages.append(f"{source}{where}: {dotted}: {text}")
        raise ConfigError("\n".join(messages)) from None


def _line(lines: dict, loc: tuple) -> str:
    for cut in range(len(loc), 0, -1):
        if loc[:cut] in lines:
            return f": line {lines[loc[:cut]]}"
    return ""


def _fields_at(loc: tuple) -> list[str]:
    model: Any = SweepSpec
    for part in loc:
        if model is SweepSpec and part == "space":
            model = "space"
        elif model == "space":
            model = Dimension
        elif isinstance(model, type) and part in model.model_fields:
            annotation = model.model_fields[part].annotation
            model = next((a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)), None)
        else:
            return []
    return list(getattr(model, "model_fields", {}))
