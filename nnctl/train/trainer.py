"""The training loop: epochs of shuffled mini-batches; forward, loss, backward, step; evaluate; save.

Per-step work is only the numerics. Metrics, schedules' epoch hooks, early stopping, reporting
and checkpoints happen once per epoch. Everything random is a pure function of (seed, epoch, step),
and the state at every epoch boundary can be saved, so a resumed run continues exactly.
"""

from __future__ import annotations

import math
import platform
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nnctl import __version__, registry
from nnctl.build import STREAM_AUGMENT, STREAM_LAYERS, STREAM_SHUFFLE, Experiment, rng_for
from nnctl.config import dump_config
from nnctl.errors import ConfigError
from nnctl.runs.checkpoint import save_checkpoint
from nnctl.runs.rundir import RunDir


class Reporter(Protocol):
    def on_start(self, experiment: Experiment, run_dir: Path | None) -> None: ...
    def on_epoch(self, row: dict[str, Any]) -> None: ...
    def on_end(self, result: TrainResult) -> None: ...


class SilentReporter:
    def on_start(self, experiment, run_dir):
        pass

    def on_epoch(self, row):
        pass

    def on_end(self, result):
        pass


@dataclass
class StopFlag:
    """Set by a signal handler (or a sweep's pruner); the loop stops at the next step boundary."""

    signum: int | None = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.signum = signum


@dataclass
class TrainResult:
    status: str  # completed | diverged | interrupted
    run_dir: Path | None
    epochs: int
    steps: int
    seconds: float
    final: dict[str, float]
    best: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    signum: int | None = None
    stop_reason: str | None = None  # early_stopping | time_limit, when a completed run ended before its epochs


@dataclass
class TrainState:
    """Everything besides arrays that the loop needs to continue exactly where it was."""

    epoch: int = 0  # completed epochs
    step: int = 0
    best_value: float | None = None
    best: dict[str, Any] = field(default_factory=dict)
    early_best: float | None = None
    early_wait: int = 0
    schedule: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # training time before this session (from summary.json; for the time limit and summary)


@dataclass
class Resume:
    """What `nnctl train --resume` hands the loop besides the restored experiment."""

    state: TrainState
    best_params: np.ndarray | None = None
    best_buffers: dict[str, np.ndarray] | None = None


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool) -> np.ndarray:
    """The sample order of an epoch: a pure function of (seed, epoch), so a resumed run sees the same batches."""
    if not shuffle:
        return np.arange(n)
    return rng_for(seed, STREAM_SHUFFLE, epoch).permutation(n)


def _higher_is_better(experiment: Experiment, column: str, mode: str) -> bool:
    if mode != "auto":
        return mode == "max"
    if column.endswith("loss"):
        return False
    name = column.split("_", 1)[1] if "_" in column else column
    metric = experiment.metrics.get(name)
    return bool(getattr(metric, "higher_is_better", False))


def resolve_monitor(
    experiment: Experiment, wanted: str, mode: str = "auto", what: str = "train.monitor"
) -> tuple[str, bool]:
    """(column, higher is better) for a monitored quantity; val_* falls back to train_loss without a val split."""
    if len(experiment.splits["val"]) == 0 and wanted.startswith("val_"):
        wanted = "train_loss"
    options = ["train_loss", "val_loss"] + [f"val_{m}" for m in experiment.metrics]
    if wanted not in options:
        raise ConfigError(
            f"{what}: '{wanted}' is not reported;{registry.suggest(wanted, options)} choose one of {', '.join(options)}."
        )
    return wanted, _higher_is_better(experiment, wanted, mode)


def monitor_of(experiment: Experiment) -> tuple[str, bool]:
    train = experiment.config.train
    return resolve_monitor(experiment, train.monitor, train.mode)


def versions() -> dict[str, str]:
    return {"nnctl": __version__, "numpy": np.__version__, "python": platform.python_version()}


def checkpoint_arrays(
    experiment: Experiment, params: np.ndarray | None = None, buffers: dict | None = None, with_optimizer: bool = True
) -> dict:
    net = experiment.network
    flat = net.flat_params if params is None else params
    arrays = {f"param/{name}": flat[o : o + int(np.prod(s))].reshape(s) for name, (o, s) in net.param_slices.items()}
    arrays.update({f"buffer/{k}": v for k, v in (net.named_buffers() if buffers is None else buffers).items()})
    if with_optimizer:
        arrays.update({f"optim/{k}": v for k, v in experiment.optimizer.state_dict().items()})
    for prefix, norm in (("norm", experiment.normalizer), ("target_norm", experiment.target_normalizer)):
        arrays.update({f"{prefix}/{k}": v for k, v in norm.state().items()})
    return arrays


def checkpoint_meta(experiment: Experiment, epoch: int, step: int, extra: dict | None = None) -> dict:
    return {
        "config": dump_config(experiment.config),
        "epoch": epoch,
        "step": step,
        "task": experiment.task,
        "feature_names": experiment.feature_names,
        "class_names": experiment.class_names,
        "target_names": experiment.target_names,
        "num_classes": experiment.num_classes,
        "normalize": experiment.normalizer.method,
        "target_normalize": experiment.target_normalizer.method,
        "versions": versions(),
        **(extra or {}),
    }


class _Snapshot:
    """The arrays of an epoch boundary, copied in memory, so an interrupt mid-epoch saves a state a
    resumed run can continue from exactly (the half-done epoch is simply run again)."""

    def __init__(self, experiment: Experiment):
        self.arrays = {k: np.array(v, copy=True) for k, v in checkpoint_arrays(experiment).items()}

    def save(self, path: Path, meta: dict) -> None:
        save_checkpoint(path, self.arrays, meta)


def train(
    experiment: Experiment,
    run: RunDir | None = None,
    reporter: Reporter | None = None,
    stop: StopFlag | None = None,
    resume: Resume | None = None,
) -> TrainResult:
    reporter = reporter or SilentReporter()
    stop = stop or StopFlag()
    cfg = experiment.config
    net, loss_fn, opt = experiment.network, experiment.loss, experiment.optimizer
    x_all, y_all = experiment.splits["train"].x, experiment.splits["train"].y
    n, batch_size = len(x_all), cfg.train.batch_size
    steps_per_epoch = math.ceil(n / batch_size)
    augmentations = experiment.augmentations
    penalties, constraints = experiment.penalties, experiment.constraints
    monitor, higher_better = monitor_of(experiment)
    early = cfg.train.early_stopping
    if early is not None:
        early_monitor, early_higher = resolve_monitor(
            experiment, early.monitor or cfg.train.monitor, early.mode, "train.early_stopping.monitor"
        )
    schedule = registry.SCHEDULES.create(cfg.schedule)
    if schedule.stateful:
        plateau_monitor, schedule.higher_is_better = resolve_monitor(
            experiment, schedule.monitor, schedule.mode, "schedule.monitor"
        )
    base_lr = opt.lr
    constant_lr = cfg.schedule.type == "constant" and schedule.warmup_epochs == 0

    state = resume.state if resume else TrainState()
    if resume:
        schedule.load_state(state.schedule)
    best_params = resume.best_params if resume and resume.best_params is not None else net.flat_params.copy()
    best_buffers = (
        resume.best_buffers
        if resume and resume.best_buffers is not None
        else {k: v.copy() for k, v in net.named_buffers().items()}
    )

    started = time.time()
    summary: dict[str, Any] = {
        "name": cfg.name,
        "status": "running",
        "seed": cfg.seed,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "monitor": monitor,
        "parameters": net.param_count,
        "versions": versions(),
    }
    if run is not None:
        if resume:
            summary.update({k: v for k, v in run.read_summary().items() if k in ("started",)}, resumed=True)
        else:
            run.write_config(dump_config(cfg))
            run.write_text("model.txt", net.summary() + "\n")
        run.write_summary(summary)
    reporter.on_start(experiment, run.path if run else None)

    def meta(extra: dict | None = None) -> dict:
        # No wall-clock time in here: the same run must give byte-identical checkpoints.
        saved_state = {k: v for k, v in asdict(state).items() if k != "seconds"}
        return checkpoint_meta(experiment, state.epoch, state.step, {"train_state": saved_state, **(extra or {})})

    def save() -> None:
        """Checkpoint the current epoch boundary (and the best weights so far)."""
        ckpt = run.path / "checkpoints"
        save_checkpoint(ckpt / "last.npz", checkpoint_arrays(experiment), meta())
        if state.best:
            best_meta = checkpoint_meta(
                experiment, state.best["epoch"], state.best["step"], {"monitor": monitor, "value": state.best_value}
            )
            save_checkpoint(
                ckpt / "best.npz", checkpoint_arrays(experiment, best_params, best_buffers, False), best_meta
            )
        if cfg.output.keep_last:
            save_checkpoint(ckpt / f"epoch-{state.epoch:04d}.npz", checkpoint_arrays(experiment), meta())
            for old in sorted(ckpt.glob("epoch-*.npz"))[: -cfg.output.keep_last]:
                old.unlink()

    if run is not None and not resume:
        save()  # the initial weights: a run that diverges in its first epoch still has a good checkpoint
    snapshot = _Snapshot(experiment) if run is not None else None
    snapshot_meta = meta() if run is not None else None
    last_save_time, min_gap = time.monotonic(), cfg.output.checkpoint_min_seconds
    saved_epoch = state.epoch
    status, stop_reason, history = "completed", None, []
    lr = base_lr

    # Overflow on the way to a NaN loss is expected when training diverges; the loss check reports it.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(state.epoch + 1, cfg.train.epochs + 1):
            t0 = time.perf_counter()
            order = epoch_order(cfg.seed, epoch, n, cfg.train.shuffle)
            augment_rng = rng_for(cfg.seed, STREAM_AUGMENT, epoch) if augmentations else None
            net.start_epoch(cfg.seed, epoch, STREAM_LAYERS)  # dropout masks and noise
            total = penalty_total = 0.0
            for k, start in enumerate(range(0, n, batch_size)):
                if not constant_lr:
                    lr = opt.lr = schedule.lr(base_lr, epoch - 1 + k / steps_per_epoch, cfg.train.epochs)
                idx = order[start : start + batch_size]
                xb = x_all.take(idx, axis=0)
                yb = y_all.take(idx, axis=0)
                for augmentation in augmentations:
                    xb = augmentation(xb, augment_rng)
                out = net.forward(xb, training=True)
                batch_loss = loss_fn.forward(out, yb)
                if not -math.inf < batch_loss < math.inf:
                    status = "diverged"
                    break
                total += batch_loss * len(idx)
                net.backward(loss_fn.backward())
                if penalties:
                    for reg, w, g in penalties:
                        penalty_total += reg.value(w) * len(idx)
                        reg.add_grad(w, g)
                opt.step()
                for constraint, w in constraints:
                    constraint.project(w)
                if stop.signum is not None:
                    status = "interrupted"
                    break
            if status != "completed":
                break
            if not np.isfinite(net.flat_params).all():  # a NaN/Inf gradient with a finite loss
                status = "diverged"
                break
            state.epoch, state.step = epoch, state.step + steps_per_epoch
            row: dict[str, Any] = {"epoch": epoch, "step": state.step, "lr": lr, "train_loss": total / n}
            if penalties:
                row["train_penalty"] = penalty_total / n  # reported apart from the data loss
            row.update({f"val_{k}": v for k, v in experiment.evaluate("val").items()})
            row["seconds"] = time.perf_counter() - t0
            history.append(row)

            value = row[monitor]
            if state.best_value is None or (value > state.best_value if higher_better else value < state.best_value):
                state.best_value = value
                state.best = {
                    "epoch": epoch,
                    "step": state.step,
                    **{k: v for k, v in row.items() if k not in ("epoch", "step", "seconds")},
                }
                np.copyto(best_params, net.flat_params)
                for key, buf in net.named_buffers().items():
                    np.copyto(best_buffers[key], buf)
            if schedule.stateful:
                schedule.on_epoch_end(row[plateau_monitor])
                state.schedule = schedule.state()
            if early is not None:
                value = row[early_monitor]
                sign = 1 if early_higher else -1
                if state.early_best is None or sign * (value - state.early_best) > early.min_delta:
                    state.early_best, state.early_wait = value, 0
                else:
                    state.early_wait += 1
                    if state.early_wait > early.patience:
                        stop_reason = "early_stopping"
            if cfg.train.max_seconds is not None and state.seconds + time.time() - started >= cfg.train.max_seconds:
                stop_reason = stop_reason or "time_limit"

            if run is not None:
                run.append_metrics(row)
                due = epoch % cfg.output.checkpoint_every == 0 and time.monotonic() - last_save_time >= min_gap
                if due or epoch == cfg.train.epochs or stop_reason:
                    save()
                    saved_epoch, last_save_time = epoch, time.monotonic()
                else:
                    snapshot, snapshot_meta = _Snapshot(experiment), meta()
            reporter.on_epoch(row)
            if stop_reason:
                break

    if run is not None and status == "interrupted" and saved_epoch < state.epoch:
        snapshot.save(run.path / "checkpoints" / "last.npz", snapshot_meta)
    if status == "completed" and stop_reason == "early_stopping" and early.restore_best and state.best:
        np.copyto(net.flat_params, best_params)
        net.load_buffers(best_buffers)
        if run is not None:
            state_meta = meta({"restored_best_epoch": state.best["epoch"]})
            save_checkpoint(run.path / "checkpoints" / "last.npz", checkpoint_arrays(experiment), state_meta)

    seconds = state.seconds + time.time() - started
    final = {k: v for k, v in (history[-1] if history else {}).items() if k not in ("epoch", "step", "seconds", "lr")}
    result = TrainResult(
        status,
        run.path if run else None,
        state.epoch,
        state.step,
        seconds,
        final,
        state.best,
        history,
        stop.signum,
        stop_reason,
    )
    if run is not None:
        summary.update(
            status=status,
            epochs=state.epoch,
            steps=state.step,
            seconds=round(seconds, 3),
            finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
            final=final or run.read_summary().get("final", {}),
            best={"monitor": monitor, **state.best},
        )
        if stop_reason:
            summary["stop_reason"] = stop_reason
        if status == "diverged":
            summary["error"] = (
                f"loss or weights became NaN or Inf in epoch {state.epoch + 1}; the last good checkpoint is kept."
            )
        run.write_summary(summary)
    reporter.on_end(result)
    return result
