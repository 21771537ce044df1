"""Validation errors as one message: each problem with its dotted key, YAML line (or --set) and a suggestion."""

from __future__ import annotations

from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ValidationError,
)

from nnctl import registry
from nnctl.config.schema import COMPONENT_SITES, experiment_model
from nnctl.registry import suggest

# --- error messages ------------------------------------------------------------------------------


def dotted_path(path: tuple) -> str:
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
    return COMPONENT_SITES.get(generic)


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


MAX_SHOWN = 30  # problems listed in one message; a file with thousands of errors gets a short answer, fast


def _short(value, limit: int = 80) -> str:
    """repr(value), cut to `limit` characters: a message quotes a bad value, it does not echo a megabyte."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def format_errors(exc: ValidationError, raw: dict, lines: dict, overridden: dict, source: str) -> str:
    messages = []
    errors = exc.errors()
    hidden = max(0, len(errors) - MAX_SHOWN)
    errors = errors[:MAX_SHOWN]
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
            text = f"{err['msg']}, got {_short(given)}.{suggest(str(given)[:100], options)}"
        else:
            text = err["msg"]
            if not isinstance(err.get("input"), (dict, list)) and kind not in ("value_error",):
                text += f" (got {_short(err.get('input'))})"
        text = text.removeprefix("Value error, ")
        messages.append(f"{_where(path, lines, overridden, source)}: {dotted_path(path)}: {text}")
    if hidden:
        messages.append(f"... and {hidden} more problems like these.")
    return "\n".join(messages)
