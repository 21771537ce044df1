"""Registries: one per pluggable kind, mapping a snake_case name to a component and its params model.

The YAML ``type:`` field picks the component by name. Every kind follows one convention, the
`Component` base: a component declares its parameters once, as the fields of a nested pydantic
``Params`` model (types, defaults, limits, descriptions; the config schema, `nnctl list` and the
docs are built from it), and never writes an ``__init__`` that repeats them. ``Registry.create``
calls ``component(**fields)``; `Component.__init__` validates the values with ``Params`` once,
keeps the frozen model as ``self.settings``, sets each field as an attribute of the same name, and
then calls ``setup()``, where a component computes whatever it derives from its parameters.

    @LAYERS.register("scaled_tanh")
    class ScaledTanh(Layer):
        class Params(Params):
            init_scale: float = Field(2.0, gt=0, description="Initial scale of every feature.")

        def _build(self, input_shape, rng):
            self._param("scale", np.full(input_shape, self.init_scale))  # the validated value
            ...

The exceptions are the training loop's own callbacks (``listable = False``), which the loop builds
from Python objects (the experiment, the best-weights keeper) rather than from YAML values.
"""

from __future__ import annotations

import difflib
import importlib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, create_model

from nnctl.errors import ConfigError

# Modules whose import registers every built-in component; imported on first registry use so that
# nothing depends on import order and `nnctl --help` stays fast.
_BUILTIN_MODULES = (
    "nnctl.nn",
    "nnctl.nn.losses",
    "nnctl.nn.playground",  # the TensorFlow Playground's loss and update rule (nnctl playground URL)
    "nnctl.optim.playground",
    "nnctl.optim.optimizers",
    "nnctl.optim.schedules",
    "nnctl.data.sources",
    "nnctl.data.function",
    "nnctl.data.sequences",
    "nnctl.data.images",
    "nnctl.data.augment",
    "nnctl.metrics",
    "nnctl.train.callbacks",
    "nnctl.train.logging_tb",  # the tensorboard callback (tensorboardX imported only when it runs)
    "nnctl.train.logging_mlflow",  # the mlflow callback (MLflow imported only when it runs)
)
_builtins_loaded = False


def load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


class Params(BaseModel):
    """Base for component parameter models and config sections: unknown keys are errors, values frozen,
    and numbers finite (`lr: .inf` or `x_range: [.nan, 1]` is an error, not a NaN run)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Component:
    """Base of every registered component: parameters are declared once, in ``Params``.

    ``Component(**values)`` validates ``values`` with ``Params`` (once: a bad value raises pydantic's
    ValidationError, as the config would), keeps the frozen model as ``self.settings``, sets every
    field as an attribute of the same name (``self.units``, ``self.lr``), then calls ``setup()``.
    Subclasses do not define ``__init__``; state derived from the parameters goes in ``setup()``
    (which calls ``super().setup()`` where a base has one). ``setup()`` may replace an attribute by
    the form the component works with (a size as a tuple, an activation name as its layer);
    ``settings`` keeps the values as validated. tests/test_components.py checks all of this for
    every registered component.
    """

    Params: ClassVar[type[BaseModel]] = Params

    def __init__(self, **values: Any) -> None:
        self.settings = self.Params(**values)
        for name in type(self.settings).model_fields:
            setattr(self, name, getattr(self.settings, name))
        self.setup()

    def setup(self) -> None:
        """Hook for state derived from the parameters (tuples, child components, buffers); declares none."""


@dataclass(frozen=True)
class Entry:
    name: str
    component: Any
    params: type[BaseModel]  # the component's own Params model (no 'type' field); see Component
    spec: type[BaseModel]  # Params plus `type: Literal[name]`, used inside the config
    summary: str


def suggest(name: str, known: list[str]) -> str:
    """' Did you mean 'x'?' for the closest known name, or ''."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


class Registry:
    def __init__(self, kind: str, plural: str):
        self.kind = kind  # "layer"
        self.plural = plural  # "layers", as in `nnctl list layers`
        self._entries: dict[str, Entry] = {}
        self.version = 0  # bumped on every registration so cached config models are rebuilt

    def register(self, name: str) -> Callable[[Any], Any]:
        if not name.replace("_", "").isalnum() or name.lower() != name:
            raise ValueError(f"{self.kind} name must be snake_case, got {name!r}")

        def decorator(component: Any) -> Any:
            if name in self._entries and self._entries[name].component is not component:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            params = getattr(component, "Params", None) or Params
            spec = create_model(
                f"{_camel(name)}{_camel(self.kind)}Spec",
                __base__=params,
                type=(Literal[name], ...),
            )
            spec.model_config["extra"] = "forbid"
            spec.model_rebuild(force=True)
            doc = (component.__doc__ or "").strip().splitlines()
            if isinstance(component, type):
                component.registered_name = name
            self._entries[name] = Entry(name, component, params, spec, doc[0] if doc else "")
            self.version += 1
            return component

        return decorator

    def names(self) -> list[str]:
        load_builtins()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        load_builtins()
        return [self._entries[n] for n in sorted(self._entries)]

    def get(self, name: str) -> Entry:
        load_builtins()
        try:
            return self._entries[name]
        except KeyError:
            known = self.names()
            raise ConfigError(
                f"unknown {self.kind} '{name}'.{suggest(name, known)} Known {self.plural}: {', '.join(known)}."
            ) from None

    def create(self, spec: BaseModel | dict, **extra: Any) -> Any:
        """Instantiate the component named by ``spec.type`` with the spec's fields as keywords (which
        `Component.__init__` validates with the component's Params and sets as attributes)."""
        fields = spec if isinstance(spec, dict) else spec.model_dump()
        fields = dict(fields)
        entry = self.get(fields.pop("type"))
        return entry.component(**fields, **extra)

    def __contains__(self, name: str) -> bool:
        load_builtins()
        return name in self._entries


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


LAYERS = Registry("layer", "layers")
LOSSES = Registry("loss", "losses")
OPTIMIZERS = Registry("optimizer", "optimizers")
DATA_SOURCES = Registry("data source", "datasets")
METRICS = Registry("metric", "metrics")
REGULARIZERS = Registry("regularizer", "regularizers")
AUGMENTATIONS = Registry("augmentation", "augmentations")
SCHEDULES = Registry("schedule", "schedules")
CALLBACKS = Registry("callback", "callbacks")

ALL = {
    r.plural: r
    for r in (LAYERS, LOSSES, OPTIMIZERS, REGULARIZERS, DATA_SOURCES, AUGMENTATIONS, SCHEDULES, METRICS, CALLBACKS)
}


def import_plugins(modules: list, folder: str | Path | None = None, *, allowed: bool = True, where: str = "") -> None:
    """The one gate through which a config's `plugins:` run: import the named modules (found on the
    import path, or in `folder`, the folder of the config that names them) so they can register
    components. For saved files (a run directory, a sweep folder) `allowed` is the user's
    --allow-plugins: without it, naming plugins is an error and nothing is imported."""
    if not modules:
        return
    _check_module_names(modules, where)
    if not allowed:
        raise ConfigError(
            f"{where} was trained with plugins {modules}; importing them runs their code. "
            "Pass --allow-plugins (allow_plugins=True in Python) if you trust them (they must be importable)."
        )
    load_builtins()  # before the folder joins the import path, so nothing built in can be shadowed from it
    added = folder is not None and str(folder) not in sys.path
    if added:
        # Last, not first: a file beside a config (gzip.py, json.py ...) can add a module the config
        # names, never replace one that Python or an installed package provides.
        sys.path.append(str(folder))
    try:
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ConfigError(
                    f"plugins: cannot import module '{module}': {exc}. A plugin is a Python module on the "
                    "import path or in the config file's folder."
                ) from None
            except Exception as exc:  # noqa: BLE001 - a plugin that fails to import is the user's to fix
                raise ConfigError(f"plugins: importing '{module}' failed: {type(exc).__name__}: {exc}") from None
    finally:
        if added and str(folder) in sys.path:
            sys.path.remove(str(folder))


def _check_module_names(modules: object, where: str) -> None:
    if not isinstance(modules, list):
        raise ConfigError(f"{where or 'plugins'}: plugins must be a list of Python module names (like my_layers).")
    for i, module in enumerate(modules):
        if not isinstance(module, str) or not _MODULE_NAME.fullmatch(module):
            raise ConfigError(
                f"{where or 'plugins'}: plugins[{i}]: {module!r} is not a Python module name (like my_layers or "
                "my_package.layers); a plugin is imported by name, never by path."
            )


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
