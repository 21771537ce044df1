"""`nnctl compare`: several runs' learning curves overlaid, labelled by what differs between their configs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from nnctl.errors import NnctlError
from nnctl.runs.rundir import RunDir

MAX_PANELS = 4  # loss + up to three validation metrics


def expand_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories; a sweep folder stands for its trials, a folder of runs (runs/<name>) for its runs."""
    out: list[Path] = []
    for path in map(Path, paths):
        if RunDir.is_run(path):
            out.append(path)
        elif (path / RunDir.TRIALS).is_dir():
            out += RunDir.trials_of(path)
        elif path.is_dir() and any(RunDir.is_run(p) for p in path.iterdir() if p.is_dir()):
            out += sorted(p for p in path.iterdir() if RunDir.is_run(p))
        else:
            raise NnctlError(f"{path} is not a run directory, a sweep folder or a folder of runs.")
    if not out:
        raise NnctlError("no runs to compare.")
    return out


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: json.dumps(node, sort_keys=True) if isinstance(node, list) else node}


def run_labels(runs: list[Path]) -> list[str]:
    """A short label per run: the config values that differ between the runs (else the folder name)."""
    import yaml

    flat = [_flatten(yaml.safe_load(RunDir(run).read_config_text()) or {}) for run in runs]
    keys = sorted({k for f in flat for k in f})
    differ = [k for k in keys if k not in ("output.runs_dir",) and len({str(f.get(k)) for f in flat}) > 1]
    labels = []
    for run, f in zip(runs, flat, strict=True):
        parts = [f"{k.split('.')[-1] if k.count('.') > 1 else k}={f.get(k)}" for k in differ]
        text = ", ".join(parts)
        if len(text) > 60:
            text = text[:57] + "..."
        labels.append(text or run.name)
    if len(set(labels)) < len(labels):  # identical configs (e.g. the same run twice): add the folder name
        labels = [
            f"{run.name}: {label}" if label != run.name else label for run, label in zip(runs, labels, strict=True)
        ]
    return labels


def write_compare(paths: list[str | Path], output: str | Path) -> Path:
    from nnctl.viz.plots import figure, read_rows, save

    runs = expand_runs(paths)
    rows = {run: read_rows(run) for run in runs}
    if not any(rows.values()):
        raise NnctlError("none of these runs has finished an epoch (metrics.csv is empty).")
    metrics: list[str] = []
    for run_rows in rows.values():
        for key in run_rows[-1] if run_rows else {}:
            if key.startswith("val_") and key != "val_loss" and key not in metrics:
                metrics.append(key)
    panels = ["loss", *metrics][:MAX_PANELS]
    plt, fig = figure("compare")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    labels = run_labels(runs)
    losses = []
    for n, (run, label) in enumerate(zip(runs, labels, strict=True)):
        color = f"C{n % 10}"
        data = rows[run]
        for ax, panel in zip(axes, panels, strict=True):
            if panel == "loss":
                for key, style in (("val_loss", "-"), ("train_loss", "--")):
                    points = [(r["epoch"], r[key]) for r in data if key in r]
                    if points:
                        xs, ys = zip(*points, strict=True)
                        ax.plot(xs, ys, style, color=color, label=f"{label} ({key.split('_')[0]})", linewidth=1.3)
                        losses += ys
            else:
                points = [(r["epoch"], r[panel]) for r in data if panel in r]
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, color=color, label=label, linewidth=1.3)
    finite = [v for v in losses if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 20:
        axes[0].set_yscale("log")
    for ax, panel in zip(axes, panels, strict=True):
        ax.set_title("loss (solid: val, dashed: train)" if panel == "loss" else panel, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    if len(panels) > 1:
        axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{len(runs)} runs compared", fontsize=11)
    fig.tight_layout()
    return save(fig, Path(output))
