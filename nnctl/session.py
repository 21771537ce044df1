"""What the CLI commands do, as plain functions: config -> build -> train -> run directory."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from nnctl import registry
from nnctl.build import build_experiment, build_network, load_dataset, split_rows
from nnctl.config import config_lines, dump_config, load_config_detailed, value_sources
from nnctl.data.tabular import fit_table
from nnctl.device import resolve_device
from nnctl.errors import ConfigError, NnctlError
from nnctl.parallel import SingleProcess, agree, note_run_dir
from nnctl.runs.checkpoint import Checkpoint
from nnctl.runs.integrity import check_train_state, write_failed
from nnctl.runs.lock import RunLock, locked
from nnctl.runs.reopen import check_resumable, open_run, read_run_config
from nnctl.runs.rundir import RunDir
from nnctl.train.preflight import check_before_run
from nnctl.train.resume_checks import already_completed, check_config_unchanged
from nnctl.train.trainer import Reporter, Resume, StopFlag, TrainResult, check_workers, train
from nnctl.yamlio import dump_yaml


def run_training(
    config_path: str | Path,
    overrides: list[str] | None = None,
    runs_dir: str | Path | None = None,
    reporter: Reporter | None = None,
    stop: StopFlag | None = None,
    comm=None,
) -> TrainResult:
    """Train a config into a new run directory. With a data-parallel `comm` (nnctl.parallel) every rank
    calls this; rank 0 alone creates and writes the run directory (and holds its lock)."""
    comm = comm or SingleProcess()

    def prepare():
        loaded = load_config_detailed(config_path, overrides)
        config = loaded.config
        with config_lines(loaded):  # an error about a config key (a column declaration) names its line
            experiment = build_experiment(config, comm=comm)  # every data/shape error surfaces before a run dir exists
        check_workers(experiment, comm.size)
        check_before_run(experiment)  # and every monitor and callback error
        run = RunDir.create(runs_dir or config.output.runs_dir, config.name) if comm.rank == 0 else None
        return experiment, run

    experiment, run = agree(comm, prepare)
    with locked(run.path) if run is not None else contextlib.nullcontext():
        return _train_marking_failures(experiment, run, reporter, stop, comm=comm)


def resume_training(
    run_dir: str | Path,
    reporter: Reporter | None = None,
    stop: StopFlag | None = None,
    allow_plugins: bool = False,
    comm=None,
    notify=None,
    device: str | None = None,
) -> TrainResult:
    """Continue a run from checkpoints/last.npz in the same directory, exactly as if never stopped.
    A run that already completed is left as it is (a result saying so, not an error). `device` (--device)
    continues on another device than the config's train.device: checkpoints are NumPy either way.

    Under MPI every rank reads the run directory (a shared file system across machines); rank 0 holds
    its lock; a run continued on another number of workers than it was trained on says so through `notify`."""
    comm = comm or SingleProcess()
    lock = None
    on = resolve_device(device) if device is not None else None  # refused first, even for a completed run

    def prepare():
        nonlocal lock
        run = RunDir.open(run_dir)
        if comm.rank == 0:  # one session per run directory
            lock = RunLock(run.path).acquire()
        unsaved = run.read_summary().get("status") in (None, "running", "failed") and not run.read_metrics()
        if unsaved and not run.has_checkpoint("last"):
            # Stopped (a SIGKILL, a power cut, a dead rank) between writing config.yaml and saving the initial
            # weights: no epoch was trained, so resuming is training the saved config from the start, here.
            # (A run with epochs in metrics.csv but no last.npz was tampered with: open_run refuses it.)
            experiment = build_experiment(read_run_config(run, allow_plugins), comm=comm, device=on)
            check_workers(experiment, comm.size)
            return experiment, None, {"epoch": 0}, run.path, None
        opened = open_run(run_dir, "last", allow_plugins)
        state = check_train_state(check_resumable(opened), opened.checkpoint.source)
        done = already_completed(opened, state, write=comm.rank == 0)
        if done is not None:
            return None, None, state, opened.path, done
        check_config_unchanged(opened)
        experiment = opened.experiment(with_optimizer=True, comm=comm, device=on)
        check_workers(experiment, comm.size)
        resume = Resume(state, seconds=float(opened.run.read_summary().get("seconds") or 0.0))
        best_epoch = (state.get("best") or {}).get("epoch")
        if best_epoch is not None and opened.run.has_checkpoint("best"):
            best = Checkpoint.load(opened.run.checkpoint_path("best"))
            if best.epoch == best_epoch:  # otherwise a kill fell between the two writes: best restarts from here
                resume.best_params, resume.best_buffers = best.flat_params(experiment.network), best.buffers
        return experiment, resume, state, opened.path, None

    try:
        experiment, resume, state, path, done = agree(comm, prepare)
        if done is not None:
            return done
        trained_on = int(state.get("workers") or 1)
        if trained_on != comm.size and notify is not None and comm.rank == 0:
            notify(
                f"this run was trained on {trained_on} worker(s) and continues on {comm.size}: the result equals an "
                f"uninterrupted {trained_on}-worker run up to rounding, except for per-rank random draws (dropout, "
                "noise, augmentation), which follow the new workers' streams."
            )
        run = RunDir.resume(path, state["epoch"]) if comm.rank == 0 else None
        return _train_marking_failures(experiment, run, reporter, stop, resume, comm=comm)
    finally:
        if lock is not None:
            lock.release()


def _train_marking_failures(
    experiment, run: RunDir | None, reporter, stop, resume: Resume | None = None, comm=None
) -> TrainResult:
    if run is not None:
        note_run_dir(run.path)
    try:
        return train(experiment, run, reporter, stop, resume, comm=comm or SingleProcess())
    except BaseException as exc:
        # A crash mid-run must not leave a directory that looks like a finished run.
        if run is not None and not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            run.mark_failed(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, OSError) and run is not None:  # a full disk, a file-size limit: not a bug
            raise write_failed(run.path, exc) from None
        raise


def describe_config(config_path: str | Path, overrides: list[str], explain: bool = False) -> str:
    loaded = load_config_detailed(config_path, overrides)
    config = loaded.config
    with config_lines(loaded):  # an error about a config key (a column declaration) names its line
        dataset = load_dataset(config)
        rows = split_rows(config, dataset)
        dataset, table = fit_table(dataset, rows["train"], None)  # a table: typed and encoded on the training rows
        network = build_network(config, dataset.sample_shape, np.dtype(config.dtype), table)
    if explain:
        sources = value_sources(loaded)
        width = max(len(k) for k in sources)
        resolved = _flatten(dump_config(config))
        body = "\n".join(f"{key.ljust(width)}  {resolved[key]!s:<24} # {origin}" for key, origin in sources.items())
    else:
        body = dump_yaml(dump_config(config)).rstrip()
    task = f"{dataset.task}, {len(dataset)} samples of shape {dataset.sample_shape}"
    if dataset.num_classes:
        task += f", {dataset.num_classes} classes"
    sizes = ", ".join(f"{name} {len(idx)}" for name, idx in rows.items())
    how = "predefined in the data file" if dataset.splits is not None else "data.split"
    if config.data.train_fraction < 1:
        how += f", train thinned by data.train_fraction {config.data.train_fraction:g}"
    schema = f"\n\n{table.schema_yaml()}" if table is not None else ""
    return f"{body}\n\ndata: {task}\nsplit: {sizes} ({how}){schema}\n\n{network.summary()}\nconfig OK: {config_path}"


def _flatten(node: Any, path: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(node, dict) and node:
        for key, value in node.items():
            out.update(_flatten(value, f"{path}.{key}" if path else str(key)))
    elif isinstance(node, list) and node and isinstance(node[0], dict):
        for i, value in enumerate(node):
            out.update(_flatten(value, f"{path}[{i}]"))
    else:
        out[path] = node
    return out


def component_table(kind: str):
    from rich.table import Table

    reg = registry.ALL.get(kind)
    if reg is None:
        known = list(registry.ALL)
        raise NnctlError(f"unknown kind '{kind}'.{registry.suggest(kind, known)} Choose one of: {', '.join(known)}.")
    table = Table(title=f"{reg.plural} ({len(reg.names())})", show_lines=True)
    table.add_column("name", style="bold")
    table.add_column("description")
    table.add_column("parameters")
    for entry in reg.entries():
        params = []
        for name, field in entry.params.model_fields.items():
            default = "required" if field.is_required() else f"= {field.get_default(call_default_factory=True)!r}"
            params.append(f"{name} {default}" + (f": {field.description}" if field.description else ""))
        configured_by = getattr(entry.component, "configured_by", "")
        table.add_row(
            entry.name, entry.summary, f"set by {configured_by}" if configured_by else "\n".join(params) or "-"
        )
    return table


def gradcheck_config(config_path: str | Path, overrides: list[str], samples: int = 4):
    """Check every layer of the configured network, its loss, and the whole network, in float64."""
    from rich.table import Table
    from rich.text import Text

    from nnctl.nn.gradcheck import TOLERANCE, check_layer, check_loss, check_network

    loaded = load_config_detailed(config_path, list(overrides) + ["dtype=float64"])
    config = loaded.config
    with config_lines(loaded):
        dataset = load_dataset(config)
        dataset, prep = fit_table(dataset, split_rows(config, dataset)["train"], None)
        network = build_network(config, dataset.sample_shape, np.float64, prep)
    loss = registry.LOSSES.create(config.loss)
    rng = np.random.default_rng(config.seed)

    table = Table(title=f"gradient check of {config_path} (float64, central differences, tolerance {TOLERANCE:g})")
    for col in ("component", "gradient", "relative error", "ok"):
        table.add_column(col)
    ok = True

    def add(component: str, what: str, err: float) -> None:
        nonlocal ok
        passed = err < TOLERANCE
        ok &= passed
        table.add_row(component, what, f"{err:.2e}", Text("yes", "green") if passed else Text("NO", "red"))

    def inputs():  # Gaussian noise, or what the first layer accepts (an embedding: token ids)
        first = network.layers[0]
        if hasattr(first, "example_input"):
            return first.example_input(samples, rng)
        return rng.standard_normal((samples,) + network.input_shape)

    x = inputs()
    for i, layer in enumerate(network.layers):
        errors = check_layer(layer, x.copy(), rng)
        for what, err in errors.items():
            add(f"{i}: {layer.describe()}", what, err)
        x = layer.forward(x, training=False)
    out = rng.standard_normal((samples,) + network.output_shape)
    if dataset.task == "classification":
        y = rng.integers(0, dataset.num_classes, samples)
    else:
        y = rng.standard_normal((samples, dataset.y.shape[1]))
    try:
        loss.check(
            network.output_shape, dataset.task, dataset.num_classes, dataset.y.shape[1] if dataset.y.ndim == 2 else 1
        )
    except ConfigError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
    add(f"loss: {loss.name}", "output", check_loss(loss, out, y))
    add(
        "network + loss",
        "all parameters (sample)",
        check_network(network, loss, inputs(), y, rng),
    )
    return table, ok
