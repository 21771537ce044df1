"""Checks on what a run directory holds before nnctl trusts it: a run directory is data, and data can be
damaged, edited by hand or hostile. Each check raises a user error naming the file and what is wrong.

- `check_values`: a checkpoint's arrays are numeric and finite, and normalization scales are non-zero
  (a NaN weight or a zero scale would turn every prediction into NaN with exit 0).
- `check_train_state`: last.npz's train_state has the types the loop needs to continue.
- `check_optimizer_state`: the optimizer's saved arrays have exactly the shapes of its live state
  (NumPy would broadcast a (1,) array over a whole moment vector without a word).
- `config_differences`: the dotted keys where config.yaml disagrees with the config the checkpoint
  was trained with (an edited config.yaml must not silently change a resumed run).
"""

from __future__ import annotations

from numbers import Real
from typing import Any

from nnctl.errors import NnctlError

_GROUPS = ("params", "buffers", "optimizer", "norm", "target_norm")


def check_values(checkpoint: Any) -> None:
    """Every array numeric and finite; normalization scales non-zero."""
    import numpy as np  # here, not at the top: `nnctl runs` reads summaries without the engine

    source = checkpoint.source or "checkpoint"
    for group in _GROUPS:
        for key, value in getattr(checkpoint, group).items():
            if value.dtype.kind not in "biuf":
                raise NnctlError(f"checkpoint {source}: '{group}/{key}' has dtype {value.dtype}, not numbers.")
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise NnctlError(
                    f"checkpoint {source}: '{group}/{key}' holds NaN or infinite values; a model built from it "
                    "would predict NaN. Use the other checkpoint (--checkpoint best/last) or train again."
                )
    for group in ("norm", "target_norm"):
        scale = getattr(checkpoint, group).get("scale")
        if scale is not None and (np.asarray(scale) == 0).any():
            raise NnctlError(f"checkpoint {source}: '{group}/scale' holds zeros; normalizing with it divides by zero.")


# train_state key -> (allowed types, description); absent keys take the loop's defaults.
_STATE_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "epoch": ((int,), "a whole number"),
    "step": ((int,), "a whole number"),
    "best_value": ((Real, type(None)), "a number or null"),
    "best": ((dict,), "a JSON object"),
    "early_best": ((Real, type(None)), "a number or null"),
    "early_wait": ((int,), "a whole number"),
    "schedule": ((dict,), "a JSON object"),
    "callbacks": ((dict,), "a JSON object"),
}


def check_train_state(state: Any, source: str, epochs: int | None = None) -> dict:
    """The train_state of a last.npz, with every known key of the type the loop expects."""
    if not isinstance(state, dict):
        raise NnctlError(f"{source}: its train_state is not a JSON object; the run cannot be resumed.")
    for key, (types, what) in _STATE_TYPES.items():
        if key not in state:
            if key in ("epoch", "step"):
                raise NnctlError(f"{source}: its train_state has no '{key}'; the run cannot be resumed.")
            continue
        value = state[key]
        if not isinstance(value, types) or isinstance(value, bool):
            raise NnctlError(f"{source}: train_state.{key} is {value!r}, not {what}; the run cannot be resumed.")
        if key in ("epoch", "step", "early_wait") and value < 0:
            raise NnctlError(f"{source}: train_state.{key} is {value}; it cannot be negative.")
    best = state.get("best") or {}
    if best and not (isinstance(best.get("epoch"), int) and isinstance(best.get("step"), int)):
        raise NnctlError(f"{source}: train_state.best has no valid epoch and step; the run cannot be resumed.")
    if epochs is not None and best and best["epoch"] > state["epoch"]:
        raise NnctlError(f"{source}: train_state.best names epoch {best['epoch']}, after the checkpoint's own epoch.")
    return state


def check_optimizer_state(optimizer: Any, saved: dict, source: str) -> None:
    """The saved optimizer arrays have the same names and shapes as the optimizer's own state."""
    import numpy as np

    live = optimizer.state_dict()
    missing, extra = sorted(set(live) - set(saved)), sorted(set(saved) - set(live))
    if missing or extra:
        raise NnctlError(
            f"checkpoint {source}: its optimizer state does not fit the config's optimizer "
            f"(missing {missing or 'nothing'}, unexpected {extra or 'nothing'})."
        )
    for key, value in live.items():
        if np.shape(saved[key]) != np.shape(value):
            raise NnctlError(
                f"checkpoint {source}: optimizer state '{key}' has shape {np.shape(saved[key])}, "
                f"but the network needs {np.shape(value)}."
            )


def config_differences(stored: Any, current: Any, path: str = "") -> list[str]:
    """Dotted paths (`optimizer.lr`, `model.layers[1].units`) where two plain configs differ."""
    if isinstance(stored, dict) and isinstance(current, dict):
        out: list[str] = []
        for key in list(stored) + [k for k in current if k not in stored]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in stored or key not in current:
                out.append(sub)
            else:
                out += config_differences(stored[key], current[key], sub)
        return out
    if isinstance(stored, list) and isinstance(current, list) and len(stored) == len(current):
        return [
            d
            for i, (a, b) in enumerate(zip(stored, current, strict=True))
            for d in config_differences(a, b, f"{path}[{i}]")
        ]
    return [] if stored == current else [path or "(top level)"]


_SUMMARY_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "status": (str,),
    "started": (str,),
    "monitor": (str,),
    "epochs": (int,),
    "steps": (int,),
    "seconds": (Real,),
    "best": (dict,),
    "final": (dict,),
    "error": (str,),
}


def summary_problem(summary: dict) -> str | None:
    """What makes a summary.json unusable for listings (a value of the wrong type), or None."""
    for key, types in _SUMMARY_TYPES.items():
        value = summary.get(key)
        if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            return f"summary.json: '{key}' is {value!r}"
    for key in ("best", "final"):
        for column, value in (summary.get(key) or {}).items():
            if column != "monitor" and value is not None and (not isinstance(value, Real) or isinstance(value, bool)):
                return f"summary.json: '{key}.{column}' is {value!r}, not a number"
    return None


def check_metrics_rows(rows: list[dict], source: str) -> list[dict]:
    """metrics.csv rows as read by csv.DictReader: each has a whole-number epoch, in order, and every column.
    A broken last line is a row torn by a kill mid-append (rows are appended before the epoch's
    checkpoint, so it is never one a resume keeps): it is dropped. A broken line before it is an error."""
    last = 0
    for line, row in enumerate(rows, start=2):
        epoch = row.get("epoch")
        torn = None in row or any(value is None for value in row.values())
        if torn or not isinstance(epoch, str) or not epoch.isdigit() or int(epoch) <= last:
            if line - 2 == len(rows) - 1:
                return rows[:-1]
            raise NnctlError(
                f"{source}: line {line} is not an epoch row (epoch {epoch!r}); the file was damaged or edited. "
                "Restore it, or remove the broken lines."
            )
        last = int(epoch)
    return rows


def write_failed(run_dir: Any, exc: OSError) -> NnctlError:
    """The user error for a run that could not write its files (disk full, `ulimit -f`, permissions)."""
    what = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    from pathlib import Path

    if (Path(run_dir) / "checkpoints" / "last.npz").is_file():
        kept = (
            "its last complete checkpoint is kept (files are replaced atomically), so after freeing space "
            f"`nnctl train --resume {run_dir}` continues it."
        )
    else:
        kept = "no checkpoint could be written, so there is nothing to resume; free space and train again."
    return NnctlError(f"cannot write to the run directory {run_dir}: {what}{where}. Training stopped; {kept}")
