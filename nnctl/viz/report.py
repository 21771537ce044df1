"""`nnctl report`: one self-contained HTML file for a run or a sweep.

Plots are embedded as base64 PNG `data:` URIs and the style sheet is inline: the file has no
external reference (no http(s) link, script or font) and reads the same offline or mailed around.
Without matplotlib the report is still written, without pictures, and says which extra to install.
"""

from __future__ import annotations

import base64
import html
import json
import math
import time
from pathlib import Path
from typing import Any

from nnctl.errors import NnctlError
from nnctl.runs.rundir import RunDir
from nnctl.version import __version__

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1300px;
       padding: 0 1em; color: #222; background: #fff; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
.status { display: inline-block; padding: 0.15em 0.6em; border-radius: 0.4em; color: #fff; font-weight: bold; }
.completed { background: #2e7d32; } .running { background: #1565c0; } .interrupted, .pruned { background: #ef6c00; }
.diverged, .failed { background: #c62828; } .some_failed { background: #ef6c00; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.meta { color: #555; } .note { color: #8a5a00; background: #fff6e0; padding: 0.5em 0.8em; border-radius: 0.3em; }
.spark { font-family: monospace; font-size: 1.1em; }
"""


def is_sweep(path: Path) -> bool:
    return (path / "trials.json").is_file() or (path / "sweep.yaml").is_file()


def write_report(
    path: str | Path, output: str | Path | None = None, checkpoint: str = "best", allow_plugins: bool = False
) -> tuple[Path, list[str]]:
    """Write the report; returns (its path, warnings such as a missing matplotlib)."""
    path = Path(path)
    if not path.is_dir():
        raise NnctlError(f"{path} is not a folder; give a run directory or a sweep folder.")
    notes: list[str] = []
    body = _sweep_body(path, notes) if is_sweep(path) else _run_body(path, checkpoint, allow_plugins, notes)
    title = html.escape(path.name if is_sweep(path) else f"{path.parent.name}/{path.name}")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>nnctl report: {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n"
        f'<p class="meta">Written by nnctl {__version__} on {time.strftime("%Y-%m-%d %H:%M:%S")}.</p>\n'
        "</body>\n</html>\n"
    )
    from nnctl.runs.files import atomic_write

    target = Path(output) if output else RunDir(path).report_path
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, page.encode("utf-8"))
    return target, notes


# --- pieces --------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return _e("" if value is None else value)


def _table(header: list[str], rows: list[list[Any]], text_columns: int = 1) -> str:
    head = "".join(
        f'<th class="text">{_e(h)}</th>' if i < text_columns else f"<th>{_e(h)}</th>" for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="text">{_fmt(v)}</td>' if i < text_columns else f"<td>{_fmt(v)}</td>" for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _image(png: Path, alt: str) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _pre(text: str) -> str:
    return f"<pre>{_e(text.rstrip())}</pre>"


def _status(status: str) -> str:
    return f'<span class="status {_e(status)}">{_e(status or "unknown")}</span>'


def _matplotlib_ok(notes: list[str]) -> bool:
    from nnctl.viz.plots import MISSING_MATPLOTLIB, pyplot

    try:
        pyplot()
        return True
    except NnctlError:
        notes.append(MISSING_MATPLOTLIB)
        return False


# --- one run -------------------------------------------------------------------------------------


def _run_body(path: Path, checkpoint: str, allow_plugins: bool, notes: list[str]) -> str:
    from nnctl.viz.plots import DRAW, KINDS, Run, applicable
    from nnctl.viz.sparkline import loss_sparkline

    run = Run.open(path, checkpoint, allow_plugins)
    summary = run.summary
    parts = [f"<h1>{_e(run.name)} {_status(summary.get('status', ''))}</h1>"]
    meta = [f"run directory <code>{_e(path)}</code>"]
    for key, label in (("started", "started"), ("finished", "finished"), ("epochs", "epochs"), ("steps", "steps"),
                       ("seconds", "seconds"), ("seed", "seed"), ("parameters", "parameters")):  # fmt: skip
        if summary.get(key) is not None:
            meta.append(f"{label} {_e(summary[key])}")
    if summary.get("stop_reason"):
        meta.append(f"stopped by {_e(summary['stop_reason'])}")
    parts.append(f'<p class="meta">{" · ".join(meta)}</p>')
    if summary.get("error"):
        parts.append(f'<p class="note">{_e(summary["error"])}</p>')
    spark = loss_sparkline([{k: v for k, v in r.items()} | {"epoch": int(r["epoch"])} for r in run.rows])
    if spark:
        parts.append(f'<p class="spark">{_e(spark)}</p>')

    parts.append("<h2>Metrics</h2>")
    parts.append(_metrics_section(run, notes))

    drawn = []
    if _matplotlib_ok(notes):
        possible = applicable(run)
        for kind in KINDS:
            if possible[kind] is None:
                drawn.append((kind, DRAW[kind](run, RunDir(path).plot_path(kind))))
    if drawn:
        parts.append("<h2>Plots</h2>")
        parts += [f"<h3>{_e(kind)}</h3>{_image(png, kind)}" for kind, png in drawn]
    for note in notes:
        parts.insert(1, f'<p class="note">{_e(note)}</p>')

    model = RunDir(path).read_model()
    if model is not None:
        parts.append("<h2>Network</h2>" + _pre(model))
    parts.append("<h2>Config</h2>" + _pre(RunDir(path).read_config_text()))
    parts.append("<h2>Summary</h2>" + _pre(json.dumps(summary, indent=2, default=str)))
    return "\n".join(parts)


def _metrics_section(run, notes: list[str]) -> str:
    out = []
    summary = run.summary
    try:
        experiment = run.experiment
    except NnctlError as exc:
        notes.append(f"the trained network could not be loaded, so only the recorded values are shown: {exc}")
        experiment = None
    if experiment is not None:
        scores = {
            split: experiment.evaluate(split) for split in ("train", "val", "test") if len(experiment.splits[split])
        }
        names = list(dict.fromkeys(k for values in scores.values() for k in values))
        rows = [[name, *[scores[s].get(name, "") for s in scores]] for name in names]
        out.append(f"<p>Scored with the <b>{_e(run.checkpoint)}</b> checkpoint "
                   f"({', '.join(f'{s}: {len(experiment.splits[s])} samples' for s in scores)}).</p>")  # fmt: skip
        out.append(_table(["metric", *scores], rows))
    recorded = []
    for label, values in (("best", summary.get("best") or {}), ("final", summary.get("final") or {})):
        for key, value in values.items():
            if key not in ("monitor",):
                recorded.append([label, key, value])
    if recorded:
        monitor = (summary.get("best") or {}).get("monitor") or summary.get("monitor")
        out.append(f"<p>Recorded during training (best by <code>{_e(monitor)}</code>):</p>")
        out.append(_table(["row", "column", "value"], recorded, text_columns=2))
    return "\n".join(out) or "<p>No metrics recorded yet.</p>"


# --- a sweep -------------------------------------------------------------------------------------


def _sweep_body(path: Path, notes: list[str]) -> str:
    import yaml

    records = []
    if (path / "trials.json").is_file():
        records = json.loads((path / "trials.json").read_text()).get("trials", [])
    spec = yaml.safe_load((path / "sweep.yaml").read_text()) if (path / "sweep.yaml").is_file() else {}
    spec = spec or {}
    objective = spec.get("objective") or {}
    goal = objective.get("goal", "min")
    counts: dict[str, int] = {}
    for r in records:
        counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
    status = "completed" if records and set(counts) == {"completed"} else ("some_failed" if records else "running")
    parts = [f"<h1>sweep {_e(spec.get('name', path.parent.name))} {_status(status)}</h1>"]
    what = f"{objective.get('split', 'val')} {objective.get('metric', 'loss')} ({goal})"
    parts.append(f"<p class=\"meta\">sweep folder <code>{_e(path)}</code> · strategy {_e(spec.get('strategy', '?'))} · "
                 f"objective {_e(what)} · {', '.join(f'{n} {s}' for s, n in counts.items()) or 'no trials yet'}</p>")  # fmt: skip

    params = list(spec.get("space") or {})
    sign = -1 if goal == "max" else 1

    def key(r):
        value = r.get("objective")
        finite = isinstance(value, (int, float)) and math.isfinite(value)
        return (r.get("status") != "completed", sign * value if finite else math.inf, r.get("trial", 0))

    ranked = sorted(records, key=key)
    parts.append("<h2>Leaderboard</h2>")
    metric_cols = list(
        dict.fromkeys(f"{s}_{m}" for r in records for s, vals in (r.get("metrics") or {}).items() for m in vals)
    )
    rows = []
    for r in ranked:
        labels = r.get("labels") or r.get("params") or {}
        metrics = {f"{s}_{m}": v for s, vals in (r.get("metrics") or {}).items() for m, v in vals.items()}
        shown = [v if isinstance(v, (int, float, str)) else json.dumps(v) for v in (labels.get(p) for p in params)]
        rows.append([r.get("trial"), r.get("status"), *shown, r.get("objective"), *[metrics.get(c) for c in metric_cols],
                     r.get("epochs"), r.get("seconds"), (r.get("error") or "").splitlines()[0] if r.get("error") else ""])  # fmt: skip
    header = ["trial", "status", *params, "objective", *metric_cols, "epochs", "seconds", "error"]
    parts.append(_table(header, rows, text_columns=2 + len(params)) if rows else "<p>No trial has finished yet.</p>")

    images = []
    if records and _matplotlib_ok(notes):
        plots = RunDir(path).plots_dir
        done = [r for r in records if r.get("status") == "completed" and isinstance(r.get("objective"), (int, float))]
        if done and params:
            images.append(("parameters vs objective", draw_parameters(done, params, what, plots / "parameters.png")))
        trials = [Path(r["run_dir"]) for r in records if r.get("run_dir") and RunDir.has_epochs(Path(r["run_dir"]))]
        trials = trials or RunDir.trials_of(path)
        if trials:
            from nnctl.viz.compare import write_compare

            images.append(("every trial's learning curves", write_compare(trials, plots / "trials.png")))
    if (path / "plot.png").is_file():
        images.append(("the sweep's plot", path / "plot.png"))
    if images:
        parts.append("<h2>Plots</h2>")
        parts += [f"<h3>{_e(label)}</h3>{_image(png, label)}" for label, png in images]
    for note in notes:
        parts.insert(1, f'<p class="note">{_e(note)}</p>')
    if (path / "best.yaml").is_file():
        parts.append("<h2>Best trial's config</h2>" + _pre((path / "best.yaml").read_text()))
    if (path / "sweep.yaml").is_file():
        parts.append("<h2>Sweep</h2>" + _pre((path / "sweep.yaml").read_text()))
    return "\n".join(parts)


def draw_parameters(records: list[dict], params: list[str], objective: str, output: Path) -> Path:
    """One panel per swept parameter: each completed trial's objective against the parameter's value."""
    from nnctl.viz.plots import figure, save

    shown = params[:4]
    plt, fig = figure("sweep")
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    ys = [r["objective"] for r in records]
    for ax, param in zip(axes, shown, strict=True):
        values = [(r.get("labels") or r.get("params") or {}).get(param) for r in records]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric:
            ax.scatter(values, ys, color="C0")
            positive = [v for v in values if v > 0]
            if len(positive) == len(values) and max(values) / min(values) > 50:
                ax.set_xscale("log")
        else:
            names = list(dict.fromkeys(str(v) for v in values))
            ax.scatter([names.index(str(v)) for v in values], ys, color="C0")
            ax.set_xticks(range(len(names)), [n[:18] for n in names], rotation=20, fontsize=8)
        ax.set_xlabel(param, fontsize=9)
        ax.set_ylabel(objective, fontsize=9)
        ax.grid(True, alpha=0.3)
    fig.suptitle("parameters vs objective (completed trials)", fontsize=11)
    fig.tight_layout()
    return save(fig, output)
