"""YAML reading with safe_load semantics, duplicate-key rejection, `1e-3` as a number, and line numbers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from nnctl.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and reads 1e-3 as a float (YAML 1.1 wants 1.0e-3)."""


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise ConfigError(
                f"{loader.name}: line {key_node.start_mark.line + 1}: duplicate key '{key}' "
                f"(first given on line {seen[key]}). YAML would silently keep only the last one; remove one."
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_map(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each key path (tuple of str/int) to its 1-based line in the file."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out)
    return out


def read_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    """Return (data, line map) for a YAML file; every problem is a ConfigError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a folder, not a file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, name: str = "<string>") -> tuple[Any, dict[tuple, int]]:
    try:
        loader = _Loader(text)
        loader.name = name
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        context = ""
        if exc.context and exc.context_mark:
            context = f" ({exc.context}, which starts at line {exc.context_mark.line + 1})"
        raise ConfigError(f"{name}: {where}: not valid YAML: {exc.problem}{context}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {exc}") from None
    return data, (_line_map(node) if node is not None else {})


def parse_scalar(text: str) -> Any:
    """Parse a --set value as a YAML scalar (or flow list/map): '0.01' -> 0.01, 'true' -> True."""
    try:
        value, _ = parse_yaml(text, "--set value")
    except ConfigError:
        return text
    return value


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
