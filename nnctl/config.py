"""ExperimentConfig: the validated, frozen description of one experiment, and how to load it.

The model is assembled from the registries (each component's params model becomes a member of a
discriminated union on `type`), so a plugin's components validate exactly like built-in ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from nnctl import registry
from nnctl.errors import ConfigError
from nnctl.registry import Params as Section
from nnctl.registry import suggest
from nnctl.yamlio import parse_scalar, read_yaml

# Where a union of components sits in the config, and which registry names its members.
_COMPONENT_SITES = {
    ("data", "source"): registry.DATA_SOURCES,
    ("model", "layers", "*"): registry.LAYERS,
    ("loss",): registry.LOSSES,
    ("optimizer",): registry.OPTIMIZERS,
    ("metrics", "*"): registry.METRICS,
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

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(
                f"train + val + test must sum to 1, got {self.train} + {self.val} + {self.test} = {total:g}"
            )
        return self


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
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise ValueError(f"metric {', '.join(repr(c) for c in twice)} is listed twice; list each once")
    return specs


_cache: dict[str, Any] = {}


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
        name=(str, Field("experiment", pattern=r"^[A-Za-z0-9_.-]+$", description="Run name (folder under runs_dir).")),
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


# --- loading -------------------------------------------------------------------------------------


@dataclass
class LoadedConfig:
    """A validated config plus what is needed to explain where each value came from."""

    config: BaseModel
    raw: dict
    lines: dict[tuple, int] = field(default_factory=dict)
    overridden: dict[tuple, str] = field(default_factory=dict)  # path -> the --set text
    source: str = "<dict>"


def load_config(path: str | Path, overrides: list[str] | None = None) -> BaseModel:
    return load_config_detailed(path, overrides).config


def load_config_detailed(path: str | Path, overrides: list[str] | None = None) -> LoadedConfig:
    raw, lines = read_yaml(Path(path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (name, data, model, ...).")
    overridden = apply_overrides(raw, overrides or [])
    # A plugin next to the config file is found without installing it.
    registry.import_plugins(raw.get("plugins") or [], Path(path).resolve().parent, where=str(path))
    return LoadedConfig(validate(raw, lines, overridden, str(path)), raw, lines, overridden, str(path))


def validate(raw: dict, lines: dict | None = None, overridden: dict | None = None, source: str = "<dict>") -> BaseModel:
    try:
        return experiment_model().model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, raw, lines or {}, overridden or {}, source)) from None


def config_from_dict(raw: dict) -> BaseModel:
    registry.import_plugins(raw.get("plugins") or [])
    return validate(raw)


# --- overrides -----------------------------------------------------------------------------------


def parse_path(dotted: str) -> tuple:
    """'model.layers[2].units' or 'model.layers.2.units' -> ('model', 'layers', 2, 'units')."""
    parts: list[Any] = []
    for piece in dotted.replace("[", ".").replace("]", "").split("."):
        if piece == "":
            raise ConfigError(f"--set {dotted}: empty part in the key path.")
        parts.append(int(piece) if piece.isdigit() else piece)
    return tuple(parts)


def apply_overrides(raw: dict, overrides: list[str]) -> dict[tuple, str]:
    """Apply `key.path=value` overrides to the raw dict in place, before validation."""
    done: dict[tuple, str] = {}
    for text in overrides:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {text!r}: expected KEY=VALUE, for example --set optimizer.lr=0.01")
        path = parse_path(key.strip())
        node: Any = raw
        for depth, part in enumerate(path[:-1]):
            node = _step(node, part, path[: depth + 1], text, create=True)
        last = path[-1]
        if isinstance(node, list):
            if not isinstance(last, int) or last >= len(node):
                raise ConfigError(f"--set {text}: index {last} is out of range (the list has {len(node)} items).")
        elif not isinstance(node, dict):
            raise ConfigError(f"--set {text}: '{_dotted(path[:-1])}' is not a section that has keys.")
        node[last] = parse_scalar(value)
        done[path] = text
    return done


def _step(node: Any, part: Any, prefix: tuple, text: str, create: bool) -> Any:
    if isinstance(node, list):
        if not isinstance(part, int) or part >= len(node):
            raise ConfigError(f"--set {text}: '{_dotted(prefix)}' is not an item of a list with {len(node)} items.")
        if isinstance(node[part], str):  # shorthand `- relu` becomes a mapping we can add keys to
            node[part] = {"type": node[part]}
        return node[part]
    if isinstance(node, dict):
        if part not in node or node[part] is None:
            node[part] = {}
        elif isinstance(node[part], str) and prefix[-1] in ("loss", "optimizer", "source"):
            node[part] = {"type": node[part]}
        return node[part]
    raise ConfigError(f"--set {text}: '{_dotted(prefix[:-1])}' has no keys to set.")


# --- error messages ------------------------------------------------------------------------------


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _clean_loc(loc: tuple, raw: Any) -> tuple:
    """Drop the union tags pydantic puts in locations ('layers', 0, 'dense', 'units')."""
    out: list[Any] = []
    node = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, dict) and node.get("type") == part or isinstance(node, str) and node == part:
            continue
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
        out.append(part)
    return tuple(out)


def _kind_at(path: tuple) -> registry.Registry | None:
    generic = tuple("*" if isinstance(p, int) else p for p in path)
    return _COMPONENT_SITES.get(generic)


def _where(path: tuple, lines: dict, overridden: dict, source: str) -> str:
    for cut in range(len(path), -1, -1):
        if path[:cut] in overridden:
            return f"--set {overridden[path[:cut]]}"
    below = [text for key, text in overridden.items() if key[: len(path)] == path and path]
    if below:  # an error about a whole section that an override changed part of
        return ", ".join(f"--set {text}" for text in below)
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines and cut > 0:
            return f"{source}: line {lines[path[:cut]]}"
    return source


def _model_at(annotation: Any, loc: tuple) -> Any:
    """The model class (or type) that validates the value at a pydantic error location."""
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field_info = annotation.model_fields.get(part)
            if field_info is None:
                return None
            annotation = field_info.annotation
        elif get_origin(annotation) is list and isinstance(part, int):
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) is Union:
            members = [m for m in get_args(_unwrap(annotation)) if _tag(m) == part]
            if not members:
                return None
            annotation = members[0]
        else:
            return None
    return _unwrap(annotation)


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _tag(model: Any) -> Any:
    fields = getattr(model, "model_fields", {})
    if "type" in fields:
        args = get_args(fields["type"].annotation)
        return args[0] if args else None
    return None


def format_errors(exc: ValidationError, raw: dict, lines: dict, overridden: dict, source: str) -> str:
    messages = []
    errors = exc.errors()
    meant: set[tuple] = set()  # required keys the user misspelt: their "missing" error would repeat it
    for err in errors:
        if err["type"] == "extra_forbidden":
            model = _model_at(experiment_model(), err["loc"][:-1])
            valid = list(getattr(model, "model_fields", {}))
            err["valid"] = valid
            close = suggest(str(err["loc"][-1]), valid)
            if close:
                meant.add(err["loc"][:-1] + (close.split("'")[1],))
    for err in errors:
        path = _clean_loc(err["loc"], raw)
        ctx = err.get("ctx") or {}
        kind = err["type"]
        if kind == "missing" and err["loc"] in meant:
            continue
        if kind == "extra_forbidden":
            key = str(err["loc"][-1])
            valid = err.get("valid") or []
            text = f"unknown key '{key}'.{suggest(key, valid)}" + (
                f" Valid keys here: {', '.join(valid)}." if valid else ""
            )
        elif kind == "union_tag_invalid":
            reg = _kind_at(path)
            known = reg.names() if reg else [t.strip("'") for t in ctx["expected_tags"].split(", ")]
            noun = reg.kind if reg else "type"
            text = f"unknown {noun} '{ctx['tag']}'.{suggest(str(ctx['tag']), known)} Known: {', '.join(known)}."
            path = path + ("type",)
        elif kind == "union_tag_not_found":
            reg = _kind_at(path)
            text = f"missing 'type:' (which {reg.kind if reg else 'component'} to use)."
            if reg:
                text += f" Known: {', '.join(reg.names())}."
        elif kind == "missing":
            text = "required key is missing."
        elif kind == "literal_error":
            given = err.get("input")
            options = [o.strip().strip("'") for o in ctx.get("expected", "").replace(" or ", ", ").split(", ")]
            text = f"{err['msg']}, got {given!r}.{suggest(str(given), options)}"
        else:
            text = err["msg"]
            if not isinstance(err.get("input"), (dict, list)) and kind not in ("value_error",):
                text += f" (got {err.get('input')!r})"
        text = text.removeprefix("Value error, ")
        messages.append(f"{_where(path, lines, overridden, source)}: {_dotted(path)}: {text}")
    return "\n".join(messages)


# --- provenance ----------------------------------------------------------------------------------


def value_sources(loaded: LoadedConfig) -> dict[str, str]:
    """Dotted path of every leaf of the resolved config -> 'file', '--set' or 'default'."""
    resolved = dump_config(loaded.config)
    out: dict[str, str] = {}

    def present(path: tuple) -> bool:
        node: Any = loaded.raw
        for part in path:
            if (
                isinstance(node, dict)
                and part in node
                or isinstance(node, list)
                and isinstance(part, int)
                and part < len(node)
            ):
                node = node[part]
            elif isinstance(node, str) and part == "type":
                return True  # shorthand `- relu` names the type
            else:
                return False
        return True

    def walk(node: Any, path: tuple) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, path + (key,))
            return
        if isinstance(node, list) and node and isinstance(node[0], dict):
            for i, value in enumerate(node):
                walk(value, path + (i,))
            return
        if any(path[:cut] in loaded.overridden for cut in range(len(path), 0, -1)):
            origin = "--set"
        elif present(path):
            origin = "file"
        else:
            origin = "default"
        out[_dotted(path)] = origin

    walk(resolved, ())
    return out


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
