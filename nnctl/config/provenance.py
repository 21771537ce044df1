"""Where each value of a resolved config came from: the file, a --set override, or a default."""

from __future__ import annotations

from typing import Any

from nnctl.config.loading import LoadedConfig
from nnctl.config.messages import dotted_path
from nnctl.config.schema import dump_config

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
        out[dotted_path(path)] = origin

    walk(resolved, ())
    return out
