"""`nnctl runs`: read the summary.json of every run under a folder, filter, sort, tabulate.

Reads only; a run directory is found as <name>/<stamp>/summary.json under RUNS_DIR (or <stamp>/summary.json
when RUNS_DIR is one experiment's folder, or a sweep's trials/ folder).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nnctl.errors import NnctlError
from nnctl.runs.integrity import summary_problem
from nnctl.runs.lock import as_seen_now
from nnctl.runs.rundir import RunDir

TEXT_KEYS = ("name", "stamp", "status", "started")
NUMBER_KEYS = ("epochs", "steps", "seconds")


def read_runs(runs_dir: str | Path) -> list[dict[str, Any]]:
    """One record per run directory, in path order; an unreadable summary gives status 'unreadable'."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise NnctlError(f"runs folder not found: {root} (train a run first, or give the folder as RUNS_DIR).")
    return [_record(path) for path in RunDir.runs_in(root)]


def _record(run: Path) -> dict[str, Any]:
    try:
        summary = RunDir(run).read_summary()
    except NnctlError as exc:
        summary = {"status": "unreadable", "error": str(exc)}
    problem = summary_problem(summary)
    if problem:
        summary = {"status": "unreadable", "error": problem}
    summary = as_seen_now(summary, run)
    best = dict(summary.get("best") or {})
    monitor = best.pop("monitor", None) or summary.get("monitor")
    return {
        "name": summary.get("name") or run.parent.name,
        "stamp": run.name,
        "path": str(run),
        "status": summary.get("status", "unknown"),
        "epochs": summary.get("epochs"),
        "steps": summary.get("steps"),
        "seconds": summary.get("seconds"),
        "started": summary.get("started"),
        "monitor": monitor,
        "best_value": best.get(monitor) if monitor else None,
        "best": best,
        "final": summary.get("final") or {},
        **({"error": summary["error"]} if summary.get("error") else {}),
    }


def filter_runs(records: list[dict], status: str | None = None, name: str | None = None) -> list[dict]:
    """Keep runs whose status is one of `status` (comma-separated) and whose name contains `name`."""
    if status:
        wanted = {s.strip() for s in status.split(",") if s.strip()}
        records = [r for r in records if r["status"] in wanted]
    if name:
        records = [r for r in records if name.lower() in str(r["name"]).lower()]
    return records


def sort_value(record: dict, key: str) -> Any:
    if key in TEXT_KEYS or key in NUMBER_KEYS:
        return record.get(key)
    if key == "best":
        return record["best_value"]
    if key.startswith("best."):
        return record["best"].get(key.removeprefix("best."))
    return record["final"].get(key)


def resolve_sort_key(records: list[dict], key: str) -> str:
    """The column to sort by: `accuracy` means `val_accuracy` when only that is reported; unknown keys
    are a user error listing the available ones."""
    special = [*TEXT_KEYS, *NUMBER_KEYS, "best"]
    if key in special:
        return key
    reported = sorted({k for r in records for k in r["final"]} | {f"best.{k}" for r in records for k in r["best"]})
    if key in reported or not records:
        return key
    for candidate in (f"val_{key}", f"train_{key}", f"best.val_{key}"):
        if candidate in reported:
            return candidate
    from nnctl.registry import suggest

    options = special + [k for k in reported if not k.startswith("best.") and k not in ("lr",)]
    raise NnctlError(
        f"--sort: no run reports '{key}'.{suggest(key, options + reported)} Sort by one of: {', '.join(options)} "
        "(or best.<column> for the value at the best epoch)."
    )


def descending(records: list[dict], key: str) -> bool:
    """Higher-is-better metrics (accuracy, r2 ...) sort best first: descending; losses ascending."""
    if key in TEXT_KEYS or key in NUMBER_KEYS:
        return False
    from nnctl.metrics import higher_is_better

    if key == "best":
        monitors = [r["monitor"] for r in records if r["monitor"]]
        column = monitors[0] if monitors else "loss"
    else:
        column = key.removeprefix("best.")
    return bool(higher_is_better(column))


def sort_runs(records: list[dict], key: str | None = None, reverse: bool = False) -> list[dict]:
    """By `key` (best value first; runs without it last), or by start stamp when no key is given."""
    if key is None:
        ordered = sorted(records, key=lambda r: (str(r["stamp"]), str(r["name"])))
        return ordered[::-1] if reverse else ordered
    key = resolve_sort_key(records, key)
    down = descending(records, key) != reverse

    def missing(value: Any) -> bool:
        return value is None or isinstance(value, float) and math.isnan(value)

    present = [r for r in records if not missing(sort_value(r, key))]
    absent = [r for r in records if missing(sort_value(r, key))]
    present.sort(key=lambda r: sort_value(r, key), reverse=down)
    return present + absent


def list_runs(
    runs_dir: str | Path,
    sort: str | None = None,
    status: str | None = None,
    name: str | None = None,
    reverse: bool = False,
) -> list[dict[str, Any]]:
    return sort_runs(filter_runs(read_runs(runs_dir), status, name), sort, reverse)


def duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or math.isnan(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def runs_table(records: list[dict], title: str):
    from rich.table import Table
    from rich.text import Text

    finals: list[str] = []
    for r in records:
        finals += [k for k in r["final"] if k not in finals and k != "lr"]
    table = Table(title=title)
    for column in ("name", "stamp", "status", "epochs", "best"):
        table.add_column(column, justify="right" if column == "epochs" else "left")
    for column in finals:
        table.add_column(column, justify="right")
    table.add_column("duration", justify="right")
    style = {"completed": "green", "diverged": "red", "interrupted": "yellow", "failed": "red", "unreadable": "red"}
    for r in records:
        best = "-"
        if r["monitor"] and r["best_value"] is not None:
            best = f"{r['monitor']} {_fmt(r['best_value'])}"
            if r["best"].get("epoch") is not None:
                best += f" @{r['best']['epoch']}"
        status = r["status"]
        table.add_row(
            str(r["name"]),
            r["stamp"],
            Text(status, style.get(status, "")),
            _fmt(r["epochs"]),
            best,
            *(_fmt(r["final"].get(k)) for k in finals),
            duration(r["seconds"]),
        )
    return table
