"""`--set KEY=VALUE` overrides, applied to the raw YAML data before the one validation."""

from __future__ import annotations

from typing import Any

from nnctl.config.messages import dotted_path
from nnctl.errors import ConfigError
from nnctl.yamlio import parse_scalar

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
            raise ConfigError(f"--set {text}: '{dotted_path(path[:-1])}' is not a section that has keys.")
        node[last] = parse_scalar(value)
        done[path] = text
    return done


def _step(node: Any, part: Any, prefix: tuple, text: str, create: bool) -> Any:
    if isinstance(node, list):
        if not isinstance(part, int) or part >= len(node):
            raise ConfigError(f"--set {text}: '{dotted_path(prefix)}' is not an item of a list with {len(node)} items.")
        if isinstance(node[part], str):  # shorthand `- relu` becomes a mapping we can add keys to
            node[part] = {"type": node[part]}
        return node[part]
    if isinstance(node, dict):
        if part not in node or node[part] is None:
            node[part] = {}
        elif isinstance(node[part], str) and prefix[-1] in ("loss", "optimizer", "source"):
            node[part] = {"type": node[part]}
        return node[part]
    raise ConfigError(f"--set {text}: '{dotted_path(prefix[:-1])}' has no keys to set.")
