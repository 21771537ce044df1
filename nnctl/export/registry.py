"""The ONNX exporter table: layer name -> function that writes the layer's inference graph.

An exporter is `fn(layer, g, x) -> y`: it reads the built layer (its params, buffers, shapes), adds
nodes to `g` (a `nnctl.export.graph.Graph`) that compute the layer's eval-mode forward from the
tensor named `x` (batch axis first, nnctl's channel-first layout), and returns the output tensor's
name. A plugin that registers a layer registers its exporter the same way:

    from nnctl.export import register_exporter

    @register_exporter("scaled_tanh")
    def _scaled_tanh(layer, g, x):
        s = g.const(layer.params["scale"], "scale")
        return g.op("Mul", [g.op("Tanh", [g.op("Div", [x, s])]), s])

This module imports neither onnx nor numpy, so a plugin can register without the `onnx` extra.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from nnctl.errors import NnctlError

Exporter = Callable[[Any, Any, str], str]

_EXPORTERS: dict[str, Exporter] = {}
_BUILTINS = ("nnctl.export.layers", "nnctl.export.table")
_loaded = False


class ExportError(NnctlError):
    """The run cannot be exported (a layer or loss without exporter, a bad opset, onnx missing): exit 2."""


def register_exporter(name: str) -> Callable[[Exporter], Exporter]:
    """Decorator: `fn` exports layers registered under `name` (one exporter per name)."""

    def decorator(fn: Exporter) -> Exporter:
        if name in _EXPORTERS and _EXPORTERS[name] is not fn:
            raise ValueError(f"an ONNX exporter for layer {name!r} is already registered")
        _EXPORTERS[name] = fn
        return fn

    return decorator


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTINS:
            importlib.import_module(module)


def exporter_for(name: str) -> Exporter | None:
    _load_builtins()
    return _EXPORTERS.get(name)


def exporter_names() -> list[str]:
    _load_builtins()
    return sorted(_EXPORTERS)


def export_layer(layer: Any, g: Any, x: str, where: str = "") -> str:
    """Export one layer (containers call this for their children) under a name scope of its own."""
    fn = exporter_for(layer.name)
    if fn is None:
        raise ExportError(
            f"layer '{layer.name}'{f' ({where})' if where else ''} has no ONNX exporter. A plugin layer can "
            f"register one: @nnctl.export.register_exporter('{layer.name}') (see nnctl/export/registry.py)."
        )
    outer = g.scope
    g.scope = f"{outer}{where}." if where else outer
    try:
        return fn(layer, g, x)
    finally:
        g.scope = outer
