"""YAML reading with safe_load semantics, duplicate-key rejection, `1e-3` as a number, and line numbers.

A config is untrusted text, so its cost is bounded before anything expands it: aliases are counted as
they would expand (a "billion laughs" file is refused, not built), recursive aliases and nesting deeper
than MAX_DEPTH are refused, files over MAX_BYTES or with more than MAX_NODES values are refused, and integers are at most MAX_DIGITS long.
Merge keys (`<<: *defaults`) are supported, with the mapping's own keys winning as YAML specifies.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import yaml

from nnctl.errors import ConfigError

MAX_BYTES = 1 << 20  # 1 MiB: far above any experiment file; parsing and checking one stays well under a second
MAX_NODES = 20_000  # values, aliases counted per use: experiment files hold hundreds; data belongs in data files
MAX_DEPTH = 64  # nesting of mappings and lists
MAX_DIGITS = 100  # digits of an integer (Python refuses to parse more than 4300 at all)

# libyaml's parser when PyYAML has it (ten times faster); the pure-Python one otherwise. Both give the
# same nodes, marks and errors for our purposes.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc,valid-type]
    """SafeLoader that rejects duplicate keys and reads 1e-3 as a float (YAML 1.1 wants 1.0e-3)."""


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *defaults`: merged below; the mapping's own keys override merged ones
        if not isinstance(key_node, yaml.ScalarNode):
            raise ConfigError(
                f"{loader.name}: line {_line(key_node)}: a key must be a plain name or number, not a "
                f"{'list' if isinstance(key_node, yaml.SequenceNode) else 'mapping'} (a YAML complex key, '? ...')."
            )
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise ConfigError(
                f"{loader.name}: line {_line(key_node)}: duplicate key '{key}' "
                f"(first given on line {seen[key]}). YAML would silently keep only the last one; remove one."
            )
        seen[key] = _line(key_node)
    try:
        loader.flatten_mapping(node)  # resolves merge keys in place: merged pairs first, own pairs last
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError(f"{loader.name}: line {_line(node)}: {exc.problem} ({exc.context}).") from None
    if isinstance(node.value, list):
        # flatten_mapping put merged pairs first: keep the last of each key (the mapping's own), once.
        last = {}
        for key_node, value_node in node.value:
            last[(key_node.tag, key_node.value)] = (key_node, value_node)
        node.value = list(last.values())
    return loader.construct_mapping(node, deep=deep)


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    digits = sum(c.isdigit() for c in node.value)
    if digits > MAX_DIGITS:
        raise ConfigError(
            f"{loader.name}: line {_line(node)}: an integer with {digits} digits; nnctl takes at most {MAX_DIGITS}."
        )
    return yaml.SafeLoader.construct_yaml_int(loader, node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _check_cost(node: yaml.Node, name: str) -> None:
    """Refuse documents whose aliases would expand past MAX_NODES, that refer to themselves, or that
    nest deeper than MAX_DEPTH; computed on the node graph (each node once), without expanding it."""
    size: dict[int, int] = {}  # id(collection node) -> expanded count of values under it, itself included
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    if isinstance(node, yaml.ScalarNode):
        return
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        key = id(current)
        children = _children(current)
        if done:
            on_path.discard(key)
            total, deepest = 1, 0
            for child in children:
                if isinstance(child, yaml.ScalarNode):
                    total += 1
                else:
                    total += size[id(child)]
                    deepest = max(deepest, depth[id(child)])
            size[key], depth[key] = total, deepest + 1
            if total > MAX_NODES:
                raise ConfigError(
                    f"{name}: line {_line(current)}: this document holds more than {MAX_NODES:,} values (a YAML "
                    "alias '*name' counts once per use); nnctl refuses it rather than build it."
                )
            if deepest + 1 > MAX_DEPTH:
                raise ConfigError(f"{name}: line {_line(current)}: nested more than {MAX_DEPTH} levels deep.")
            continue
        if key in size:
            continue
        on_path.add(key)
        stack.append((current, True))
        for child in children:
            if isinstance(child, yaml.ScalarNode):
                continue
            if id(child) in on_path:
                raise ConfigError(
                    f"{name}: line {_line(child)}: a YAML alias refers to a node that contains it "
                    "(a recursive alias); write the value out instead."
                )
            if id(child) not in size:
                stack.append((child, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return node.value if isinstance(node, yaml.SequenceNode) else []


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
    path = Path(path)
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"config path is a folder, not a file: {path}")
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            raise ConfigError(f"config path is not a regular file: {path}")
        if info.st_size > MAX_BYTES:
            raise ConfigError(
                f"{path}: {info.st_size:,} bytes; an experiment file is at most {MAX_BYTES:,} bytes. "
                "Keep data in data files, not in the config."
            )
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, name: str = "<string>") -> tuple[Any, dict[tuple, int]]:
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{name}: {len(text):,} characters; YAML text is at most {MAX_BYTES:,}.")
    try:
        loader = _Loader(text)
        loader.name = name
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_cost(node, name)
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
    except RecursionError:
        raise ConfigError(f"{name}: nested too deeply to read.") from None
    except (ValueError, OverflowError, TypeError) as exc:  # e.g. a !!timestamp with a 13th month
        raise ConfigError(f"{name}: a value cannot be read: {exc}.") from None
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
