"""Terminal output: a live progress bar on a terminal, plain lines otherwise; tables for results."""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from nnctl.viz.sparkline import loss_sparkline


def make_console(stderr: bool = False) -> Console:
    """A console that never reads printed text as rich markup.

    Paths, run names, class labels, notes and messages are printed as they are, brackets included
    (`out[bold]/`, `pip install 'nnctl[plot]'`); styles are given explicitly with `styled()` / `Text`.
    NO_COLOR and non-terminal output switch colour and live display off (rich honours both)."""
    return Console(
        stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")), highlight=False, soft_wrap=True, markup=False
    )


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text from plain strings and (string, style) pairs, none of it read as markup."""
    return Text.assemble(*parts)


def format_row(row: dict[str, Any]) -> str:
    parts = []
    for key, value in row.items():
        if key in ("epoch", "step", "lr", "seconds"):
            continue
        parts.append(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)


class ConsoleReporter:
    """Reports training progress: rich bar on a terminal, at most ~25 plain lines otherwise."""

    def __init__(self, console: Console):
        self.console = console
        self.live = console.is_terminal and not console.is_dumb_terminal
        self.progress: Progress | None = None

    def on_start(self, experiment, run_dir) -> None:
        cfg = experiment.config
        self.epochs = cfg.train.epochs
        self.every = max(1, self.epochs // 20)
        self.samples = len(experiment.splits["train"])  # the global count, also with data-parallel workers
        sizes = ", ".join(f"{k} {len(v)}" for k, v in experiment.splits.items())
        self.console.print(
            styled((cfg.name, "bold"), f": {experiment.network.param_count:,} parameters; samples: {sizes}")
        )
        if run_dir is not None:
            self.console.print(f"run directory: {run_dir}")
        if self.live:
            self.progress = Progress(
                TextColumn("epoch"),
                MofNCompleteColumn(),
                BarColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}", markup=False),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=self.epochs, status="")

    def on_epoch(self, row: dict[str, Any]) -> None:
        speed = f"  {self.samples / row['seconds']:,.0f} samples/s" if row.get("seconds") else ""
        if self.progress is not None:
            self.progress.update(self.task, advance=1, status=format_row(row) + speed)
        elif row["epoch"] % self.every == 0 or row["epoch"] in (1, self.epochs):
            self.console.print(f"epoch {row['epoch']}/{self.epochs}  {format_row(row)}{speed}")

    def on_end(self, result) -> None:
        if self.progress is not None:
            self.progress.stop()
        style = {"completed": "green", "diverged": "red", "interrupted": "yellow"}.get(result.status, "")
        self.console.print(
            styled(
                (result.status, style), f" after {result.epochs} epochs, {result.steps} steps, {result.seconds:.1f} s"
            )
        )
        curve = loss_sparkline(result.history, ascii_only=not self.console.encoding.lower().startswith("utf"))
        if curve:
            self.console.print(curve)
        if result.best:
            best = {k: v for k, v in result.best.items() if k not in ("epoch", "step", "lr")}
            self.console.print(f"best (epoch {result.best['epoch']}): {format_row(best)}")
        if result.final:
            self.console.print(f"final: {format_row(result.final)}")


def metrics_table(title: str, metrics: dict[str, float]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.6g}" if isinstance(value, float) else str(value))
    return table


def print_error(message: str) -> None:
    make_console(stderr=True).print(styled(("error:", "bold red"), " ", message))


def print_note(message: str) -> None:
    make_console(stderr=True).print(styled(("note:", "yellow"), " ", message))


def stdout_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, allow_nan=True, default=str) + "\n")
    sys.stdout.flush()
