"""The sweep's live view: a rich table of trials updating as they run and finish (plain lines when the
output is not a terminal), ending with the leaderboard."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

STYLES = {"completed": "green", "pruned": "yellow", "failed": "red", "diverged": "red", "interrupted": "yellow"}
LIVE_ROWS = 20  # the live table shows the running trials and the latest finished ones
BOARD_ROWS = 10


class SilentView:
    def on_begin(self, path, spec, total: int, done: int) -> None:
        pass

    def on_submit(self, trial) -> None:
        pass

    def on_tick(self, running: list[int]) -> None:
        pass

    def on_finish(self, record: dict) -> None:
        pass

    def on_interrupt(self) -> None:
        pass

    def on_end(self, outcome, board: list[dict]) -> None:
        pass


class SweepView(SilentView):
    def __init__(self, console: Console):
        self.console = console
        self.live_mode = console.is_terminal and not console.is_dumb_terminal
        self.live: Live | None = None
        self.rows: dict[int, dict[str, Any]] = {}
        self.started = time.monotonic()

    def on_begin(self, path, spec, total: int, done: int) -> None:
        self.spec, self.total, self.done = spec, total, done
        self.keys = list(spec.space)
        objective = spec.objective
        self.console.print(
            Text.assemble(
                (f"sweep {spec.name}", "bold"),
                f": {spec.strategy}, {total} trials"
                + (f" ({done} already done)" if done else "")
                + f"; objective {objective.metric} on {objective.split}",
            )
        )
        self.console.print(f"sweep folder: {path}")
        if self.live_mode:
            self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=True)
            self.live.start()

    def on_submit(self, trial) -> None:
        self.rows[trial.index] = {"trial": trial.index, "status": "queued", "labels": trial.labels}
        self._refresh()

    def on_tick(self, running: list[int]) -> None:
        for index in running:
            if self.rows.get(index, {}).get("status") == "queued":
                self.rows[index]["status"] = "running"
                self.rows[index]["since"] = time.monotonic()
        self._refresh()

    def on_finish(self, record: dict) -> None:
        self.rows[record["trial"]] = record
        if record["status"] != "interrupted":
            self.done += 1
        if self.live is None:
            objective = record.get("objective")
            value = f"objective {objective:.4g}" if isinstance(objective, float) else ""
            error = f"  {record['error'].splitlines()[0]}" if record.get("error") else ""
            self.console.print(
                Text.assemble(
                    f"trial {record['trial']} ",
                    _styled(record["status"]),
                    f" ({self.done}/{self.total})  {_params(record.get('labels'))}  {value}  "
                    f"{record.get('seconds', 0) or 0:.1f} s{error}",
                )
            )
        self._refresh()

    def on_interrupt(self) -> None:
        self.console.print(
            Text.assemble(("interrupted", "yellow"), ": stopping the running trials; finished trials are kept.")
        )

    def on_end(self, outcome, board: list[dict]) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        counts = ", ".join(f"{n} {status}" for status, n in outcome.counts().items())
        self.console.print(self._board(board[:BOARD_ROWS]))
        self.console.print(f"{outcome.status}: {counts}; {time.monotonic() - self.started:.1f} s; {outcome.path}")
        if outcome.best is not None:
            self.console.print(f"best: trial {outcome.best['trial']} -> {outcome.path / 'best.yaml'}")
        if outcome.status == "interrupted":
            self.console.print(f"resume with: nnctl sweep --resume {outcome.path}")

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._table())

    def _table(self) -> Table:
        table = self._frame(f"{self.done}/{self.total} trials done")
        rows = sorted(self.rows.values(), key=lambda r: (r["status"] not in ("running", "queued"), -r["trial"]))
        for row in sorted(rows[:LIVE_ROWS], key=lambda r: r["trial"]):
            self._add(table, row)
        return table

    def _board(self, records: list[dict]) -> Table:
        table = self._frame(f"leaderboard (objective: {self.spec.objective.metric} on {self.spec.objective.split})")
        for record in records:
            self._add(table, record)
        return table

    def _frame(self, title: str) -> Table:
        table = Table(title=title)
        for col in ("trial", *short_names(self.keys), "status", "objective", "epochs", "seconds"):
            table.add_column(col, justify="right" if col in ("trial", "objective", "epochs", "seconds") else "left")
        return table

    def _add(self, table: Table, row: dict) -> None:
        labels = row.get("labels") or {}
        status = row["status"]
        objective = row.get("objective")
        seconds = row.get("seconds")
        if status == "running":
            seconds = time.monotonic() - row.get("since", time.monotonic())
        table.add_row(
            str(row["trial"]),
            *(_fmt(labels.get(k)) for k in self.keys),
            _styled(status),
            f"{objective:.4g}" if isinstance(objective, float) else "",
            str(row.get("epochs") or ""),
            f"{seconds:.1f}" if isinstance(seconds, (int, float)) else "",
        )


def short_names(keys: list[str]) -> list[str]:
    """Each path's shortest tail that no other path shares: optimizer.lr -> lr; layers[0].units, layers[1].units."""
    parts = [k.split(".") for k in keys]
    out = []
    for i, p in enumerate(parts):
        n = 1
        while n < len(p) and any(q[-n:] == p[-n:] for j, q in enumerate(parts) if j != i):
            n += 1
        out.append(".".join(p[-n:]))
    return out


def _styled(status: str) -> Text:
    return Text(status, STYLES.get(status, ""))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _params(labels: dict | None) -> str:
    return " ".join(f"{k}={_fmt(v)}" for k, v in (labels or {}).items())
