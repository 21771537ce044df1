"""Run a sweep: plan the trials, validate every trial config, hand trials to an executor, record each
result as it arrives, resume what is missing, and write the leaderboard and best.yaml.

runs/sweeps/<name>/<stamp>/
  sweep.yaml       the sweep as resolved: base config inlined (with `set:` applied), defaults filled in
  trials/0000/     one full run directory per trial (config.yaml, metrics.csv, summary.json, checkpoints/)
  trials.json      every trial's record (parameters, seed, status, objective, metrics, curve, error)
  trials.csv       the same as a table, in trial order; leaderboard.csv sorted best first
  best.yaml        the best completed trial's resolved config: `nnctl train best.yaml` reproduces it
  plot.png         when the sweep file asks for one (needs matplotlib)
"""

from __future__ import annotations

import concurrent.futures
import copy
import json
import shutil
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnctl.config import apply_overrides, validate
from nnctl.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_TERMINATED, ConfigError, NnctlError
from nnctl.runs.files import atomic_write, new_stamped_folder
from nnctl.runs.rundir import RunDir
from nnctl.sweep import strategies
from nnctl.sweep.records import best_record, leaderboard, table_csv
from nnctl.sweep.spec import SweepSpec, load_sweep, parse_sweep
from nnctl.sweep.strategies import Trial
from nnctl.sweep.trial import FINAL, run_trial
from nnctl.yamlio import dump_yaml, read_yaml

SWEEP_FILE, RECORDS_FILE = "sweep.yaml", "trials.json"
SHOWN_ERRORS = 10


@dataclass
class Sweep:
    spec: SweepSpec  # resolved: `config` inline, `set` applied, `base_dir` filled in
    path: Path
    records: dict[int, dict] = field(default_factory=dict)

    @property
    def base(self) -> dict:
        return self.spec.config or {}


@dataclass
class Outcome:
    path: Path
    records: list[dict]
    best: dict | None
    status: str  # completed | some_failed | interrupted
    exit_code: int

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out


# --- preparing -----------------------------------------------------------------------------------


def prepare_sweep(sweep_file: str | Path, runs_dir: str | Path | None = None) -> Sweep:
    """Read and resolve a sweep file and check every trial config; only then create the sweep folder."""
    sweep_file = Path(sweep_file)
    spec = load_sweep(sweep_file)
    folder = sweep_file.resolve().parent
    if spec.base is not None:
        base_path = (folder / spec.base).resolve()
        raw, lines = read_yaml(base_path)
        if not isinstance(raw, dict):
            raise ConfigError(f"{base_path}: the top level must be a mapping of sections (name, data, model, ...).")
        source, base_dir = str(base_path), base_path.parent
    else:
        raw, lines, source, base_dir = copy.deepcopy(spec.config), {}, f"{sweep_file}: config", folder
    overridden = apply_overrides(raw, spec.set)
    _import_plugins(raw, base_dir)
    base_config = validate(raw, lines, overridden, source)
    resolved = spec.model_copy(update={"base": None, "config": raw, "set": [], "base_dir": str(base_dir)})
    sweep = Sweep(resolved, Path())
    plan_check(sweep)
    parent = Path(runs_dir or base_config.output.runs_dir) / "sweeps" / spec.name
    sweep.path = _new_folder(parent)
    header = f"# the sweep as resolved from {sweep_file}" + (f" (base: {spec.base})" if spec.base else "") + "\n"
    body = resolved.model_dump(mode="json", exclude_none=True, exclude={"base"})
    atomic_write(sweep.path / SWEEP_FILE, (header + dump_yaml(body)).encode())
    return sweep


def open_sweep(sweep_dir: str | Path, allow_plugins: bool = False, retry_failed: bool = False) -> Sweep:
    """Reopen a sweep folder (for --resume): its resolved sweep file and the trials recorded so far.

    A sweep folder is data, like a run directory: the plugins its sweep.yaml names are imported only with
    `allow_plugins`. With `retry_failed`, trials recorded as failed (e.g. their worker was killed) run again."""
    path = Path(sweep_dir)
    if not (path / SWEEP_FILE).is_file():
        raise NnctlError(f"{path} is not a sweep folder (no {SWEEP_FILE}); pass the folder `nnctl sweep` printed.")
    raw, lines = read_yaml(path / SWEEP_FILE)
    if not isinstance(raw, dict):
        raise NnctlError(f"{path / SWEEP_FILE} is not a sweep file (its top level is not a mapping).")
    spec = parse_sweep(raw, str(path / SWEEP_FILE), lines)
    plugins = (spec.config or {}).get("plugins") or []
    if plugins and not allow_plugins:
        raise NnctlError(
            f"{path / SWEEP_FILE} names plugins {plugins}; importing them runs their code. "
            "Pass --allow-plugins if you trust this sweep folder."
        )
    _import_plugins(spec.config or {}, Path(spec.base_dir) if spec.base_dir else path)
    records = {}
    if (path / RECORDS_FILE).exists():
        try:
            records = {int(r["trial"]): r for r in json.loads((path / RECORDS_FILE).read_text())["trials"]}
            if not all(isinstance(r.get("status"), str) for r in records.values()):
                raise ValueError("a trial record has no status")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise NnctlError(f"{path / RECORDS_FILE} is unreadable: {exc}") from None
    if retry_failed:
        records = {i: r for i, r in records.items() if r["status"] != "failed"}
    sweep = Sweep(spec, path, records)
    plan_check(sweep)
    return sweep


def _import_plugins(raw: dict, folder: Path) -> None:
    from nnctl import registry

    registry.import_plugins(raw.get("plugins") or [], folder, where="sweep config")


def _new_folder(parent: Path) -> Path:
    return new_stamped_folder(parent, what="sweeps folder")


def plan(spec: SweepSpec) -> list[Trial] | None:
    """Every trial of a grid or random sweep; None for tpe (proposed batch by batch)."""
    if spec.strategy == "grid":
        return strategies.grid_trials(spec)
    if spec.strategy == "random":
        return strategies.random_trials(spec)
    strategies.require_optuna()
    return None


def plan_check(sweep: Sweep) -> None:
    """Validate every trial config before the first trial starts (tpe: every axis at its extremes)."""
    strategies.goal(sweep.spec)  # an unknown objective metric fails here, not after the first trial
    trials = plan(sweep.spec)
    errors = []
    for trial in trials if trials is not None else strategies.corner_trials(sweep.spec):
        try:
            trial_config(sweep.base, trial)
        except ConfigError as exc:
            name = f"trial {trial.index}" if trial.index >= 0 else "the space"
            errors.append(f"{name} ({_describe(trial.labels)}):\n  " + str(exc).replace("\n", "\n  "))
    if errors:
        more = f"\n... and {len(errors) - SHOWN_ERRORS} more" if len(errors) > SHOWN_ERRORS else ""
        raise ConfigError(
            f"sweep {sweep.spec.name}: {len(errors)} trial config(s) are invalid; nothing was run.\n"
            + "\n".join(errors[:SHOWN_ERRORS])
            + more
        )


def trial_config(base: dict, trial: Trial) -> dict:
    """The base config with the trial's overrides applied, validated; returned as raw data for the worker."""
    raw = copy.deepcopy(base)
    overridden = apply_overrides(raw, trial.overrides())
    validate(raw, overridden=overridden, source=f"trial {trial.index}")
    return raw


def _describe(labels: dict) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in labels.items())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


# --- running -------------------------------------------------------------------------------------


class _Terminated(KeyboardInterrupt):
    """SIGTERM to the sweep process: stop like Ctrl-C, exit 143."""


class Runner:
    def __init__(self, sweep: Sweep, executor: concurrent.futures.Executor, view=None, on_record=None):
        from nnctl.sweep.live import SilentView

        self.sweep, self.spec, self.executor = sweep, sweep.spec, executor
        self.view = view or SilentView()
        self.on_record = on_record  # test hook: called after each recorded trial (may raise KeyboardInterrupt)
        self.goal = strategies.goal(self.spec)
        self._futures: dict[concurrent.futures.Future, Trial] = {}

    def run(self) -> Outcome:
        signum = None
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
        total = self.spec.trials if self.spec.strategy != "grid" else len(plan(self.spec))
        self.view.on_begin(self.sweep.path, self.spec, total, sum(self._final(r) for r in self.sweep.records.values()))
        try:
            if self.spec.strategy == "tpe":
                self._run_tpe()
            else:
                self._run_batch(plan(self.spec), history=[])
        except KeyboardInterrupt as exc:
            signum = signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT
            self._stop()
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, previous)
            self.executor.shutdown(wait=True, cancel_futures=True)
        return self._finish(signum)

    def _final(self, record: dict | None) -> bool:
        return record is not None and record["status"] in FINAL

    def _run_tpe(self) -> None:
        batch, total = self.spec.batch, self.spec.trials
        for k, first in enumerate(range(0, total, batch)):
            earlier = [self.sweep.records[i] for i in range(first) if i in self.sweep.records]
            trials = strategies.tpe_batch(self.spec, k, earlier, first, min(batch, total - first))
            history = [r for r in earlier if r["status"] == "completed" and r.get("objective") is not None]
            self._run_batch(trials, history)

    def _run_batch(self, trials: list[Trial], history: list[dict]) -> None:
        for trial in trials:
            if self._final(self.sweep.records.get(trial.index)):
                continue  # done in an earlier run of this sweep
            self._submit(trial, history)
        while self._futures:
            done, _ = concurrent.futures.wait(self._futures, timeout=0.5, return_when="FIRST_COMPLETED")
            self.view.on_tick([t.index for f, t in self._futures.items() if f.running()])
            for future in done:
                self._record(self._futures.pop(future), _result(future))

    def _submit(self, trial: Trial, history: list[dict]) -> None:
        run_dir = self.sweep.path / RunDir.TRIALS / f"{trial.index:04d}"
        try:
            config = trial_config(self.sweep.base, trial)
        except ConfigError as exc:  # a tpe proposal outside what the config accepts
            self._record(trial, {"trial": trial.index, "status": "failed", "objective": None, "error": str(exc)})
            return
        if run_dir.exists():
            shutil.rmtree(run_dir)  # what an interrupted attempt left; the trial starts over
        task = {
            "trial": trial.index,
            "config": config,
            "run_dir": str(run_dir.resolve()),
            "base_dir": self.spec.base_dir,
            "objective": {**self.spec.objective.model_dump(), "column": self.spec.objective.column},
            "direction": self.goal,
            "pruning": self.spec.pruning.model_dump() if self.spec.pruning else None,
            "history": [{"objective": r["objective"], "curve": r.get("curve") or []} for r in history],
        }
        self._futures[self.executor.submit(run_trial, task)] = trial
        self.view.on_submit(trial)

    def _record(self, trial: Trial, result: dict) -> None:
        record = {
            "trial": trial.index,
            "status": result.get("status", "failed"),
            "params": trial.params,
            "labels": trial.labels,
            "point": trial.point,
            "seed": trial.seed,
            "overrides": trial.overrides(),
            "run_dir": f"trials/{trial.index:04d}",
            **{k: v for k, v in result.items() if k not in ("trial", "status")},
        }
        self.sweep.records[trial.index] = record
        save_records(self.sweep, self.goal)
        self.view.on_finish(record)
        if self.on_record is not None:
            self.on_record(record)

    def _stop(self) -> None:
        """Ctrl-C: nothing new starts, running trials stop at their next step; what finished is kept."""
        self.view.on_interrupt()
        self.executor.shutdown(wait=False, cancel_futures=True)
        stop_running = getattr(self.executor, "stop_running", None)
        if stop_running is not None:
            stop_running()
        for future, trial in list(self._futures.items()):
            try:
                if not future.cancelled():
                    concurrent.futures.wait([future], timeout=60)
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting
                break
            self._record(trial, _result(future) if future.done() else _interrupted())
        self._futures.clear()

    def _finish(self, signum: int | None) -> Outcome:
        records = [self.sweep.records[i] for i in sorted(self.sweep.records)]
        best = best_record(records, self.goal)
        save_records(self.sweep, self.goal)
        if best is not None:
            text = RunDir(self.sweep.path / best["run_dir"]).read_config_text()
            header = (
                f"# best trial of sweep {self.spec.name}: trial {best['trial']}, objective {best['objective']:.6g}\n"
            )
            atomic_write(self.sweep.path / "best.yaml", (header + text).encode())
        if self.spec.plot is not None and signum is None:
            from nnctl.sweep.plot import write_cells, write_plot

            write_cells(self.sweep.path, self.spec, records)
            write_plot(self.sweep.path, self.spec, records)
        failed = any(r["status"] in ("failed", "diverged") for r in records)
        if signum is not None:
            status, code = "interrupted", EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED
        else:
            status, code = ("some_failed", EXIT_SOME_FAILED) if failed else ("completed", EXIT_OK)
        outcome = Outcome(self.sweep.path, records, best, status, code)
        self.view.on_end(outcome, leaderboard(records, self.goal))
        return outcome


def _raise_terminated(signum, frame) -> None:
    raise _Terminated()


def _interrupted() -> dict:
    return {"status": "interrupted", "objective": None, "error": "stopped by the sweep being interrupted"}


def _result(future: concurrent.futures.Future) -> dict:
    """A trial's record, whatever happened to its worker."""
    if future.cancelled():
        return _interrupted()
    exc = future.exception()
    if exc is None:
        return future.result()
    return {"status": "failed", "objective": None, "error": f"{type(exc).__name__}: {exc}".strip()}


# --- results -------------------------------------------------------------------------------------


def save_records(sweep: Sweep, goal: str) -> None:
    records = [sweep.records[i] for i in sorted(sweep.records)]
    data = json.dumps({"trials": records}, indent=1, allow_nan=True, default=str) + "\n"
    atomic_write(sweep.path / RECORDS_FILE, data.encode())
    atomic_write(sweep.path / "trials.csv", table_csv(sweep.spec, records).encode())
    atomic_write(sweep.path / "leaderboard.csv", table_csv(sweep.spec, leaderboard(records, goal)).encode())
