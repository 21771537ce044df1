"""The experiment config: schema (assembled from the registries), loading, --set overrides, error
messages and value provenance, one job per module. Import names from here."""

from nnctl.config.loading import (
    LoadedConfig,
    config_from_dict,
    config_lines,
    load_config,
    load_config_detailed,
    validate,
)
from nnctl.config.overrides import apply_overrides, parse_path
from nnctl.config.provenance import value_sources
from nnctl.config.schema import dump_config, experiment_model

__all__ = [
    "LoadedConfig",
    "apply_overrides",
    "config_from_dict",
    "config_lines",
    "dump_config",
    "experiment_model",
    "load_config",
    "load_config_detailed",
    "parse_path",
    "validate",
    "value_sources",
]
