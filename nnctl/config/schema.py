"""ExperimentConfig: the validated, frozen description of one experiment, assembled from the registries.

Each component's params model becomes a member of a discriminated union on `type`, so a plugin's
components validate exactly like built-in ones. `dump_config` gives the resolved config as plain data.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    PlainValidator,
    WithJsonSchema,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)

from nnctl import registry
from nnctl.device import device_name
from nnctl.registry import Params as Section

# Where a union of components sits in the config, and which registry names its members.
COMPONENT_SITES = {
    ("data", "source"): registry.DATA_SOURCES,
    ("model", "layers", "*"): registry.LAYERS,
    ("loss",): registry.LOSSES,
    ("optimizer",): registry.OPTIMIZERS,
    ("metrics", "*"): registry.METRICS,
    ("callbacks", "*"): registry.CALLBACKS,
}


def _shorthand(value: Any) -> Any:
    """Let `loss: mse` stand for `loss: {type: mse}`."""
    return {"type": value} if isinstance(value, str) else value


def _none_registered(kind: str):
    def reject(value: Any) -> Any:
        raise ValueError(f"no {kind} components are available yet")

    return reject


def component_union(reg: registry.Registry, **extra_fields: Any) -> Any:
    """A discriminated union (on `type`) of the registry's specs; `extra_fields` are added to every member."""
    specs = tuple(entry.spec for entry in reg.entries())
    if extra_fields:
        specs = tuple(create_model(spec.__name__, __base__=spec, **extra_fields) for spec in specs)
    if not specs:  # a kind whose components have not been written yet (or are all plugins)
        return Annotated[dict, AfterValidator(_none_registered(reg.kind))]
    if len(specs) == 1:
        return Annotated[specs[0], BeforeValidator(_shorthand)]
    return Annotated[Union[specs], Discriminator("type"), BeforeValidator(_shorthand)]  # noqa: UP007 (a runtime tuple)


class SplitConfig(Section):
    train: float = Field(0.7, gt=0, le=1, description="Fraction of samples used for training.")
    val: float = Field(0.15, ge=0, lt=1, description="Fraction for validation (monitoring, best checkpoint).")
    test: float = Field(0.15, ge=0, lt=1, description="Fraction held out for `nnctl eval`.")
    folds: int | None = Field(
        None,
        ge=2,
        description="k-fold cross-validation (written by `nnctl cv`): train + val are pooled and cut into `folds` "
        "stratified folds; fold number `fold` is the validation split, the rest trains; test stays untouched.",
    )
    fold: int = Field(0, ge=0, description="Which fold is the validation split (0 .. folds - 1).")
    repeat: int = Field(0, ge=0, description="Which repetition of the k-fold cut (each a new shuffle, from the seed).")

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(
                f"train + val + test must sum to 1, got {self.train} + {self.val} + {self.test} = {total:g}"
            )
        if self.folds is not None and self.fold >= self.folds:
            raise ValueError(f"fold must be 0 .. {self.folds - 1} for {self.folds} folds, got {self.fold}")
        return self

    @model_serializer(mode="wrap")
    def _without_unused_folds(self, handler):
        # A config without cv resolves (and checkpoints) exactly as before these keys existed.
        out = handler(self)
        if self.folds is None:
            for key in ("folds", "fold", "repeat"):
                out.pop(key, None)
        return out


class NormalizeConfig(Section):
    method: Literal["none", "minmax", "standard"] = Field(
        "none", description="none; minmax: map [min, max] onto `range`; standard: mean 0, std 1."
    )
    per: Literal["feature", "all"] = Field(
        "feature", description="Statistics per feature (each value of a sample) or over all values (e.g. all pixels)."
    )
    range: tuple[float, float] = Field((0.0, 1.0), description="Target interval of minmax, e.g. [0, 1] or [-1, 1].")

    @model_validator(mode="after")
    def _ordered(self) -> NormalizeConfig:
        if self.range[0] >= self.range[1]:
            raise ValueError(f"range must be [low, high] with low < high, got {list(self.range)}")
        return self


class EarlyStoppingConfig(Section):
    monitor: str | None = Field(None, description="Column to watch (default: train.monitor).")
    mode: Literal["auto", "min", "max"] = Field(
        "auto", description="min, max, or auto (max for accuracy-like metrics)."
    )
    patience: int = Field(10, ge=0, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0, description="Smallest change that counts as an improvement.")
    restore_best: bool = Field(True, description="End with the weights of the best epoch instead of the last one.")


def _threads(value: Any) -> str | int:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValueError(f"must be auto or a whole number of threads (1 or more), got {value!r}")


Threads = Annotated[
    Any,
    PlainValidator(_threads),
    WithJsonSchema({"anyOf": [{"const": "auto"}, {"type": "integer", "minimum": 1}]}),
]


def _device(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be cpu, cuda or cuda:N, got {value!r}")
    return device_name(value)


DeviceName = Annotated[
    Any,
    PlainValidator(_device),
    WithJsonSchema({"anyOf": [{"enum": ["cpu", "cuda"]}, {"type": "string", "pattern": "^cuda:[0-9]+$"}]}),
]


class TrainConfig(Section):
    epochs: int = Field(10, ge=1, description="Passes over the training split.")
    batch_size: int = Field(32, ge=1, description="Samples per mini-batch (the last batch may be smaller).")
    shuffle: bool = Field(True, description="Reshuffle the training split every epoch (order fixed by seed and epoch).")
    monitor: str = Field(
        "val_loss",
        description="Quantity that picks the best checkpoint: val_loss, train_loss, or val_<metric>. "
        "Falls back to train_loss when there is no validation split.",
    )
    mode: Literal["auto", "min", "max"] = Field(
        "auto", description="Whether the monitored value should go down or up; auto: up for accuracy-like metrics."
    )
    early_stopping: EarlyStoppingConfig | None = Field(
        None, description="Stop when the monitored value stops improving (null = off)."
    )
    max_seconds: float | None = Field(
        None, gt=0, description="Wall-clock limit: stop after the epoch that passes it (null = none)."
    )
    threads: Threads = Field(
        "auto",
        description="BLAS threads: auto (one for small models, all cores for large ones, fewer when the machine "
        "is busy; never more than OPENBLAS_NUM_THREADS if set) or a number. Needs threadpoolctl (nnctl[speed]).",
    )
    device: DeviceName = Field(
        "cpu",
        description="Where training runs: cpu, or cuda / cuda:N (GPU N) through CuPy (extra nnctl[gpu]). "
        "Checkpoints are NumPy either way: eval, predict, export and --resume run on any device.",
    )

    @model_serializer(mode="wrap")
    def _without_default_device(self, handler):
        # A CPU run resolves (and checkpoints) exactly as before the device key existed.
        out = handler(self)
        if self.device == "cpu":
            out.pop("device", None)
        return out


class OutputConfig(Section):
    runs_dir: str = Field("runs", description="Folder under which runs/<name>/<stamp>/ is created.")
    checkpoint_every: int = Field(
        1, ge=1, description="Write checkpoints/last.npz and best.npz every N epochs (always at the end)."
    )
    checkpoint_min_seconds: float = Field(
        2.0,
        ge=0,
        description="Skip a periodic checkpoint if the previous one is more recent than this: runs of many "
        "tiny epochs do not spend their time writing files. 0 saves every checkpoint_every epochs.",
    )
    keep_last: int = Field(
        0,
        ge=0,
        description="Also keep the K most recent periodic checkpoints as checkpoints/epoch-NNNN.npz (0 = only last.npz).",
    )


def _metric_names(specs: list) -> list:
    """Each metric names one column (`accuracy`, `top3_accuracy`); a column listed twice is an error."""
    columns = [registry.METRICS.create(spec).column for spec in specs]
    twice = sorted(c for c, n in Counter(columns).items() if n > 1)
    if twice:
        raise ValueError(f"metric {', '.join(repr(c) for c in twice)} is listed twice; list each once")
    return specs


_cache: dict[str, Any] = {}


# A run name is one folder name: letters, digits, '_', '-', '.', and not only dots ('..' would leave runs_dir).
RUN_NAME = r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$"


def experiment_model() -> type[BaseModel]:
    """Build (or reuse) the ExperimentConfig model for the components registered right now."""
    registry.load_builtins()
    key = tuple(r.version for r in registry.ALL.values())
    if _cache.get("key") == key:
        return _cache["model"]

    data_config = create_model(
        "DataConfig",
        __base__=Section,
        source=(component_union(registry.DATA_SOURCES), Field(description="Where the samples come from.")),
        split=(SplitConfig, Field(default_factory=SplitConfig, description="Train/val/test fractions.")),
        normalize=(
            Annotated[NormalizeConfig, BeforeValidator(lambda v: {"method": v} if isinstance(v, str) else v)],
            Field(
                default_factory=NormalizeConfig,
                description="Input normalization fitted on the training split only: none | minmax | standard, "
                "or a mapping {method, per, range}.",
            ),
        ),
        target_normalize=(
            Literal["none", "standard"],
            Field("none", description="Standardize regression targets for training; metrics stay in original units."),
        ),
        train_fraction=(
            float,
            Field(
                1.0,
                gt=0,
                le=1,
                description="Train on only this fraction of the training split (stratified, fixed by the seed); "
                "val and test stay whole. For learning curves and small-data experiments.",
            ),
        ),
        augment=(
            list[component_union(registry.AUGMENTATIONS)],
            Field(default_factory=list, description="Random transforms of training batches, applied in order."),
        ),
    )
    model_config = create_model(
        "ModelConfig",
        __base__=Section,
        layers=(
            list[
                component_union(
                    registry.LAYERS,
                    regularizers=(
                        list[component_union(registry.REGULARIZERS)],
                        Field(default_factory=list, description="Penalties/constraints for this layer's weights only."),
                    ),
                )
            ],
            Field(min_length=1, description="Layers in order; input sizes are inferred."),
        ),
    )
    experiment = create_model(
        "ExperimentConfig",
        __base__=Section,
        name=(str, Field("experiment", pattern=RUN_NAME, description="Run name (folder under runs_dir).")),
        seed=(int, Field(0, ge=0, description="Seeds data generation, splits, initialisation and shuffling.")),
        dtype=(Literal["float32", "float64"], Field("float32", description="Floating type of the engine.")),
        plugins=(
            list[str],
            Field(default_factory=list, description="Python modules imported first; they may register components."),
        ),
        data=(data_config, Field(description="Data source, split and normalization.")),
        model=(model_config, Field(description="The network.")),
        loss=(component_union(registry.LOSSES), Field(description="Training loss.")),
        optimizer=(
            component_union(registry.OPTIMIZERS),
            Field(default_factory=lambda: {"type": "adam"}, validate_default=True, description="Optimizer."),
        ),
        regularizers=(
            list[component_union(registry.REGULARIZERS)],
            Field(
                default_factory=list, description="Weight penalties added to the loss, for every layer they apply to."
            ),
        ),
        train=(TrainConfig, Field(default_factory=TrainConfig, description="Training loop settings.")),
        metrics=(
            Annotated[
                list[component_union(registry.METRICS)],
                BeforeValidator(lambda v: [v] if isinstance(v, (str, dict)) else v),
            ],
            Field(
                default_factory=list,
                description="Metrics computed on val every epoch and by `nnctl eval`: names or "
                "{type: top_k_accuracy, k: 3}; empty means the task's usual ones "
                "(accuracy for classification; mse, mae, r2 for regression).",
            ),
        ),
        schedule=(
            component_union(registry.SCHEDULES),
            Field(
                default_factory=lambda: {"type": "constant"},
                validate_default=True,
                description="Learning-rate schedule.",
            ),
        ),
        output=(OutputConfig, Field(default_factory=OutputConfig, description="Run directory settings.")),
        callbacks=(
            list[component_union(registry.CALLBACKS)],
            Field(
                default_factory=list,
                description="More callbacks run after every epoch (`nnctl list callbacks`; plugins can add their own).",
            ),
        ),
        __validators__={"_metrics": field_validator("metrics")(_metric_names)},
    )
    _cache.update(key=key, model=experiment)
    return experiment


def dump_config(config: BaseModel) -> dict:
    """The resolved config as plain data, with each component's `type` first."""

    def order(node: Any) -> Any:
        if isinstance(node, dict):
            items = {k: order(v) for k, v in node.items()}
            if "type" in items:
                items = {"type": items.pop("type"), **items}
            return items
        if isinstance(node, list):
            return [order(v) for v in node]
        return node

    dumped = order(config.model_dump(mode="json"))
    if not dumped.get("callbacks"):
        dumped.pop("callbacks", None)  # configs without callbacks resolve as they did before callbacks existed
    return dumped
