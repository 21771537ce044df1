"""Load a config: read the YAML, apply --set overrides, import the plugins it names, validate once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import (
    BaseModel,
    ValidationError,
)

from nnctl import registry
from nnctl.config.messages import _where, dotted_path, format_errors
from nnctl.config.overrides import apply_overrides
from nnctl.config.schema import experiment_model
from nnctl.errors import ConfigError, NnctlError
from nnctl.yamlio import read_yaml

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
    registry.import_plugins(
        raw.get("plugins") or [], Path(path).resolve().parent, where=_where(("plugins",), lines, overridden, str(path))
    )
    return LoadedConfig(validate(raw, lines, overridden, str(path)), raw, lines, overridden, str(path))


def validate(raw: dict, lines: dict | None = None, overridden: dict | None = None, source: str = "<dict>") -> BaseModel:
    try:
        return experiment_model().model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, raw, lines or {}, overridden or {}, source)) from None


def config_from_dict(raw: dict) -> BaseModel:
    registry.import_plugins(raw.get("plugins") or [])
    return validate(raw)


@contextmanager
def config_lines(loaded: LoadedConfig) -> Iterator[None]:
    """A user error raised inside that names a config key (NnctlError.key: a column declaration, the target ...)
    is raised again with where that key is written, as validation errors say it: 'cfg.yaml: line 12: ...' (the
    nearest enclosing key's line when it is a default, or the --set that gave it)."""
    try:
        yield
    except NnctlError as exc:
        if exc.key is None:
            raise
        where = _where(exc.key, loaded.lines, loaded.overridden, loaded.source)
        text = str(exc)
        if not text.startswith(dotted_path(exc.key)):
            text = f"{dotted_path(exc.key)}: {text}"
        located = type(exc)(f"{where}: {text}")
        raise located from None
