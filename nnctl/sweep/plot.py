"""A simple PNG of a sweep: one line per `series` value, the chosen column against the `x` axis.

matplotlib is optional; without it the sweep still writes trials.csv and says how to get the plot.
"""

from __future__ import annotations

import math
from pathlib import Path

from nnctl.sweep.spec import SweepSpec


def plot_column(spec: SweepSpec) -> str:
    return spec.plot.y if spec.plot and spec.plot.y else f"test_{spec.objective.metric}"


def plot_points(spec: SweepSpec, records: list[dict]) -> dict[str, list[tuple[float, float, int]]]:
    """{series label: [(x, mean y, trials), ...] sorted by x} from the completed trials.

    Trials that share a cell (x, series), e.g. repeats over a `seed` axis, are averaged."""
    from nnctl.sweep.records import table_row

    column, x_key, series_key = plot_column(spec), spec.plot.x, spec.plot.series
    cells: dict[str, dict[float, list[float]]] = {}
    for record in records:
        if record["status"] != "completed":
            continue
        row = table_row(record)
        y = row.get(column)
        if not isinstance(y, (int, float)) or not math.isfinite(y):
            continue
        name = str(row.get(series_key, "")) if series_key else spec.objective.metric
        cells.setdefault(name, {}).setdefault(float(row[x_key]), []).append(float(y))
    return {name: [(x, sum(ys) / len(ys), len(ys)) for x, ys in sorted(by_x.items())] for name, by_x in cells.items()}


def write_cells(sweep_dir: Path, spec: SweepSpec, records: list[dict]) -> Path:
    """cells.csv: the plotted value for every (series, x) cell, whether or not matplotlib is installed."""
    from nnctl.runs.files import atomic_write

    column = plot_column(spec)
    lines = [f"{spec.plot.series or 'series'},{spec.plot.x},{column},trials"]
    for name, points in plot_points(spec, records).items():
        lines += [f"{name},{x!r},{y!r},{n}" for x, y, n in points]
    path = Path(sweep_dir) / "cells.csv"
    atomic_write(path, ("\n".join(lines) + "\n").encode())
    return path


def write_plot(sweep_dir: Path, spec: SweepSpec, records: list[dict]) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    lines = plot_points(spec, records)
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    for name, points in lines.items():
        xs, ys, _ = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", label=name)
    if spec.plot.log_x:
        ax.set_xscale("log")
    ax.set_xlabel(spec.plot.x)
    ax.set_ylabel(plot_column(spec))
    ax.set_title(f"sweep {spec.name}")
    ax.grid(True, alpha=0.3)
    if spec.plot.series:
        ax.legend(title=spec.plot.series)
    fig.tight_layout()
    path = Path(sweep_dir) / "plot.png"
    fig.savefig(path)
    plt.close(fig)
    return path
