"""The training loop: epochs of shuffled mini-batches; forward, loss, backward, step; evaluate; save.

Per-step work is only the numerics. Metrics, reporting and checkpoints happen once per epoch.
"""

from __future__ import annotations

import math
import platform
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nnctl import __version__
from nnctl.build import STREAM_AUGMENT, STREAM_LAYERS, STREAM_SHUFFLE, Experiment, rng_for
from nnctl.config import dump_config
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
    """Set by a signal handler; the loop stops at the next step boundary."""

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


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool) -> np.ndarray:
    """The sample order of an epoch: a pure function of (seed, epoch), so a resumed run sees the same batches."""
    if not shuffle:
        return np.arange(n)
    return rng_for(seed, STREAM_SHUFFLE, epoch).permutation(n)


def monitor_of(experiment: Experiment) -> tuple[str, bool]:
    """(monitored column, higher is better)."""
    wanted = experiment.config.train.monitor
    has_val = len(experiment.splits["val"]) > 0
    if not has_val and wanted.startswith("val_"):
        wanted = "train_loss"
    if wanted in ("train_loss", "val_loss"):
        return wanted, False
    metric = experiment.metrics.get(wanted.removeprefix("val_"))
    if not wanted.startswith("val_") or metric is None:
        from nnctl.errors import ConfigError

        options = ["train_loss", "val_loss"] + [f"val_{m}" for m in experiment.metrics]
        raise ConfigError(f"train.monitor: '{wanted}' is not reported; choose one of {', '.join(options)}.")
    return wanted, metric.higher_is_better


def versions() -> dict[str, str]:
    return {"nnctl": __version__, "numpy": np.__version__, "python": platform.python_version()}


def checkpoint_arrays(experiment: Experiment, params: np.ndarray | None = None, with_optimizer: bool = True) -> dict:
    net = experiment.network
    flat = net.flat_params if params is None else params
    arrays = {f"param/{name}": flat[o : o + int(np.prod(s))].reshape(s) for name, (o, s) in net.param_slices.items()}
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


def train(
    experiment: Experiment, run: RunDir | None = None, reporter: Reporter | None = None, stop: StopFlag | None = None
) -> TrainResult:
    reporter = reporter or SilentReporter()
    stop = stop or StopFlag()
    cfg = experiment.config
    net, loss_fn, opt = experiment.network, experiment.loss, experiment.optimizer
    train_split = experiment.splits["train"]
    x_all, y_all = train_split.x, train_split.y
    n, batch_size = len(train_split), cfg.train.batch_size
    monitor, higher_better = monitor_of(experiment)
    every = cfg.output.checkpoint_every
    augmentations = experiment.augmentations
    penalties, constraints = experiment.penalties, experiment.constraints

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
        run.write_config(dump_config(cfg))
        run.write_text("model.txt", net.summary() + "\n")
        run.write_summary(summary)
    reporter.on_start(experiment, run.path if run else None)

    best_value = -math.inf if higher_better else math.inf
    best: dict[str, Any] = {}
    best_params = net.flat_params.copy()
    history: list[dict[str, Any]] = []
    status, step, epoch = "completed", 0, 0
    last_saved_epoch = 0
    last_save_time, min_gap = time.monotonic(), cfg.output.checkpoint_min_seconds

    def save(epoch_done: int) -> None:
        if run is None:
            return
        meta = checkpoint_meta(experiment, epoch_done, step)
        save_checkpoint(run.path / "checkpoints" / "last.npz", checkpoint_arrays(experiment), meta)
        if best:
            best_meta = checkpoint_meta(
                experiment, best["epoch"], best["step"], {"monitor": monitor, "value": best_value}
            )
            save_checkpoint(
                run.path / "checkpoints" / "best.npz", checkpoint_arrays(experiment, best_params, False), best_meta
            )

    save(0)  # the initial weights: a run that diverges in its first epoch still has a good checkpoint
    # Overflow on the way to a NaN loss is expected when training diverges; the loss check reports it.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(1, cfg.train.epochs + 1):
            t0 = time.perf_counter()
            order = epoch_order(cfg.seed, epoch, n, cfg.train.shuffle)
            # Random draws depend on seed, epoch and step only (so a resumed run repeats them exactly).
            augment_rng = rng_for(cfg.seed, STREAM_AUGMENT, epoch) if augmentations else None
            net.start_epoch(cfg.seed, epoch, STREAM_LAYERS)  # dropout masks and noise
            total = penalty_total = 0.0
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                xb = x_all.take(idx, axis=0)
                yb = y_all.take(idx, axis=0)
                for augmentation in augmentations:
                    xb = augmentation(xb, augment_rng)
                out = net.forward(xb, training=True)
                total += loss_fn.forward(out, yb) * len(idx)
                net.backward(loss_fn.backward())
                if penalties:
                    for reg, w, g in penalties:
                        penalty_total += reg.value(w) * len(idx)
                        reg.add_grad(w, g)
                opt.step()
                for constraint, w in constraints:
                    constraint.project(w)
                step += 1
                if stop.signum is not None:
                    break
            if stop.signum is not None:
                status = "interrupted"
                break
            train_loss = total / n
            if not math.isfinite(train_loss):
                status = "diverged"
                break
            row: dict[str, Any] = {"epoch": epoch, "step": step, "lr": opt.lr, "train_loss": train_loss}
            if penalties:
                row["train_penalty"] = penalty_total / n  # reported apart from the data loss
            row.update({f"val_{k}": v for k, v in experiment.evaluate("val").items()})
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            value = row[monitor]
            if value > best_value if higher_better else value < best_value:
                best_value = value
                best = {
                    "epoch": epoch,
                    "step": step,
                    **{k: v for k, v in row.items() if k not in ("epoch", "step", "seconds")},
                }
                np.copyto(best_params, net.flat_params)
            if run is not None:
                run.append_metrics(row)
                due = epoch % every == 0 and time.monotonic() - last_save_time >= min_gap
                if due or epoch == cfg.train.epochs:
                    save(epoch)
                    last_saved_epoch, last_save_time = epoch, time.monotonic()
            reporter.on_epoch(row)

    if status == "interrupted" and run is not None:
        save(epoch - 1)  # mid-epoch state; the epoch counter says how many epochs completed
    elif status == "completed" and run is not None and last_saved_epoch != epoch:
        save(epoch)

    seconds = time.time() - started
    final = {k: v for k, v in (history[-1] if history else {}).items() if k not in ("epoch", "step", "seconds", "lr")}
    result = TrainResult(
        status, run.path if run else None, len(history), step, seconds, final, best, history, stop.signum
    )
    if run is not None:
        summary.update(
            status=status,
            epochs=len(history),
            steps=step,
            seconds=round(seconds, 3),
            finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
            final=final,
            best={"monitor": monitor, **best},
        )
        if status == "diverged":
            summary["error"] = f"loss became NaN or Inf in epoch {epoch}; the last good checkpoint is kept."
        run.write_summary(summary)
    reporter.on_end(result)
    return result
