"""Run the CLI in-process on hostile input and classify what happened, for asserts and for the figures.

An outcome is good when the command exits with an expected code, prints no traceback, and (for a
rejected input) leaves no new run directory behind. Every case tried is tallied per category; the
session prints the figures table at the end (see conftest.py)."""

from __future__ import annotations

import signal
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from typer.testing import CliRunner

from nnctl.cli import app

_runner = CliRunner()
TALLY: dict[str, Counter] = defaultdict(Counter)


@dataclass
class Outcome:
    code: int
    output: str
    traceback: bool
    new_run_dirs: list[Path] = field(default_factory=list)

    def describe(self) -> str:
        return f"exit {self.code}, traceback={self.traceback}, new run dirs={self.new_run_dirs}\n{self.output}"


def run_dirs(root: Path | None) -> set[Path]:
    """Every folder holding a run's files (checkpoints/ or summary.json) under root."""
    if root is None or not Path(root).exists():
        return set()
    return {p.parent for p in Path(root).rglob("checkpoints")} | {p.parent for p in Path(root).rglob("summary.json")}


def cli(*args, runs_root: Path | None = None) -> Outcome:
    before = run_dirs(runs_root)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = _runner.invoke(app, [str(a) for a in args])
    finally:  # `train` installs its stop handlers; give the test process its own back
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    output = result.output + (f"\n{type(result.exception).__name__}: {result.exception}" if crashed else "")
    traceback = crashed or "Traceback (most recent call last)" in result.output
    return Outcome(result.exit_code, output, traceback, sorted(run_dirs(runs_root) - before))


def record(category: str, outcome: Outcome, expected: tuple[int, ...] = (2,), rejected: bool = True) -> bool:
    """Count the case; True when it behaved (expected exit code, no traceback, nothing left behind)."""
    tally = TALLY[category]
    tally["cases"] += 1
    tally[f"exit {outcome.code}"] += 1
    tally["tracebacks"] += outcome.traceback
    tally["wrong exit codes"] += outcome.code not in expected
    leftover = rejected and bool(outcome.new_run_dirs)
    tally["leftover run dirs"] += leftover
    return outcome.code in expected and not outcome.traceback and not leftover


def expect(category: str, outcome: Outcome, *fragments: str, codes: tuple[int, ...] = (2,)) -> None:
    """Assert a good outcome whose output holds every fragment."""
    ok = record(category, outcome, codes, rejected=codes != (0,))
    assert ok, outcome.describe()
    for fragment in fragments:
        assert fragment in outcome.output, f"{fragment!r} not in:\n{outcome.output}"
