"""What the CLI commands do, as plain functions: config -> build -> train -> run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nnctl import registry
from nnctl.build import build_experiment, build_network, load_dataset
from nnctl.config import dump_config, load_config, load_config_detailed, value_sources
from nnctl.errors import ConfigError, NnctlError
from nnctl.runs.rundir import RunDir, create_run_dir
from nnctl.train.trainer import Reporter, StopFlag, TrainResult, train
from nnctl.yamlio import dump_yaml


def run_training(
    config_path: str | Path,
    overrides: list[str] | None = None,
    runs_dir: str | Path | None = None,
    reporter: Reporter | None = None,
    stop: StopFlag | None = None,
) -> TrainResult:
    config = load_config(config_path, overrides)
    experiment = build_experiment(config)  # every data/shape error surfaces before a run dir exists
    run = RunDir(create_run_dir(runs_dir or config.output.runs_dir, config.name))
    try:
        return train(experiment, run, reporter, stop)
    except BaseException as exc:
        # A crash mid-run must not leave a directory that looks like a finished run.
        if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            _mark_failed(run, exc)
        raise


def resume_training(
    run_dir: str | Path,
    reporter: Reporter | None = None,
    stop: StopFlag | None = None,
    allow_plugins: bool = False,
) -> TrainResult:
    """Continue a run from checkpoints/last.npz in the same directory, exactly as if never stopped."""
    from nnctl.runs.checkpoint import group, load_checkpoint
    from nnctl.train.evaluate import restore_run
    from nnctl.train.trainer import Resume, TrainState

    experiment, arrays, meta = restore_run(run_dir, "last", allow_plugins)
    if "train_state" not in meta:
        raise NnctlError(f"{run_dir}/checkpoints/last.npz has no training state; it cannot be resumed.")
    state = TrainState(**meta["train_state"])
    state.seconds = float(RunDir(Path(run_dir)).read_summary().get("seconds") or 0.0)
    if state.epoch >= experiment.config.train.epochs:
        raise NnctlError(
            f"{run_dir} already completed all {state.epoch} epochs; nothing to resume. "
            "To train longer, start a new run from its config.yaml with --set train.epochs=N."
        )
    experiment.optimizer.load_state_dict(group(arrays, "optim"))
    best_params = best_buffers = None
    best_path = Path(run_dir) / "checkpoints" / "best.npz"
    if state.best and best_path.exists():
        best_arrays, _ = load_checkpoint(best_path)
        best_params = experiment.network.flat_params.copy()
        for name, (offset, shape) in experiment.network.param_slices.items():
            best_params[offset : offset + int(np.prod(shape))] = best_arrays[f"param/{name}"].ravel()
        best_buffers = group(best_arrays, "buffer")
    run = RunDir.reopen(Path(run_dir), state.epoch)
    try:
        return train(experiment, run, reporter, stop, Resume(state, best_params, best_buffers))
    except BaseException as exc:
        if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            _mark_failed(run, exc)
        raise


def _mark_failed(run: RunDir, exc: BaseException) -> None:
    from nnctl.runs.rundir import read_summary

    try:
        summary = read_summary(run.path)
        summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        run.write_summary(summary)
    except Exception:  # noqa: BLE001 - the original error matters more
        pass


def describe_config(config_path: str | Path, overrides: list[str], explain: bool = False) -> str:
    loaded = load_config_detailed(config_path, overrides)
    config = loaded.config
    dataset = load_dataset(config)
    network = build_network(config, dataset.sample_shape, np.dtype(config.dtype))
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
    return f"{body}\n\ndata: {task}\n\n{network.summary()}\nconfig OK: {config_path}"


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
        table.add_row(entry.name, entry.summary, "\n".join(params) or "-")
    return table


def gradcheck_config(config_path: str | Path, overrides: list[str], samples: int = 4):
    """Check every layer of the configured network, its loss, and the whole network, in float64."""
    from rich.table import Table

    from nnctl.nn.gradcheck import TOLERANCE, check_layer, check_loss, check_network

    config = load_config(config_path, list(overrides) + ["dtype=float64"])
    dataset = load_dataset(config)
    network = build_network(config, dataset.sample_shape, np.float64)
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
        table.add_row(component, what, f"{err:.2e}", "[green]yes[/]" if passed else "[red]NO[/]")

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
