"""Callbacks: everything the training loop does besides the numerics, each with its own state.

The hooks follow Keras and Lightning: `on_train_start(loop)`, `on_epoch_end(loop, row) -> stop?`,
`on_train_end(loop)`, and `state_dict()` / `load_state_dict()` for exact resume (the loop saves every
callback's state in last.npz). They are called in list order (see `standard_callbacks`), except that
at the end the loop's own callbacks finish before a config's, so those see a complete run directory.

Built-in callbacks come from config sections (train.monitor, train.early_stopping, schedule,
train.max_seconds, output); a config's `callbacks:` list adds registered ones, e.g. from a plugin.
Those follow the registry's Component convention: parameters declared once in Params, set as
attributes by the constructor, derived state made in `setup()`:

    @CALLBACKS.register("print_every")
    class PrintEvery(Callback):
        class Params(Params):
            every: int = 10
        def on_epoch_end(self, loop, row):
            if row["epoch"] % self.every == 0:
                print(row)

The loop's own callbacks (`listable = False`) are the exception: the loop builds them from Python
objects (the experiment, the best-weights keeper, the reporter), so they keep their constructors.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nnctl import registry
from nnctl.errors import ConfigError
from nnctl.registry import CALLBACKS, Component
from nnctl.version import versions

if TYPE_CHECKING:
    from nnctl.train.loop import Loop


class Callback(Component):
    """Base class: every hook does nothing. `on_epoch_end` returns a truthy value (a reason string, or
    True) to stop training after this epoch."""

    # Callbacks the loop builds from config sections set this False: listing them again under
    # `callbacks:` would run them twice.
    listable: ClassVar[bool] = True
    configured_by: ClassVar[str] = ""  # for loop-owned callbacks: the config section that sets them
    # Built-in state is stored flat in train_state (checkpoint format 1); others under their name.
    flat_state: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return getattr(self, "registered_name", type(self).__name__)

    def on_train_start(self, loop: Loop) -> None:
        pass

    def on_epoch_end(self, loop: Loop, row: dict[str, Any]) -> str | bool | None:
        return None

    def on_train_end(self, loop: Loop) -> None:
        pass

    def close(self) -> None:
        """Always called when train() returns or raises: release what on_train_start took (threads, files)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _higher_is_better(experiment, column: str, mode: str) -> bool:
    if mode != "auto":
        return mode == "max"
    if column.endswith("loss"):
        return False
    name = column.split("_", 1)[1] if "_" in column else column
    metric = experiment.metrics.get(name)
    return bool(getattr(metric, "higher_is_better", False))


def resolve_monitor(experiment, wanted: str, mode: str = "auto", what: str = "train.monitor") -> tuple[str, bool]:
    """(column, higher is better) for a monitored quantity; val_* falls back to train_loss without a val split."""
    if len(experiment.splits["val"]) == 0 and wanted.startswith("val_"):
        wanted = "train_loss"
    options = ["train_loss", "val_loss"] + [f"val_{m}" for m in experiment.metrics]
    if wanted not in options:
        raise ConfigError(
            f"{what}: '{wanted}' is not reported;{registry.suggest(wanted, options)} choose one of {', '.join(options)}."
        )
    return wanted, _higher_is_better(experiment, wanted, mode)


@CALLBACKS.register("best_weights")
class BestWeights(Callback):
    """Keeps the weights of the best epoch by train.monitor (they become checkpoints/best.npz)."""

    listable, flat_state = False, True
    configured_by = "train.monitor, train.mode"

    def __init__(self, experiment):
        net = experiment.network
        self.network = net
        self.monitor, self.higher = resolve_monitor(
            experiment, experiment.config.train.monitor, experiment.config.train.mode
        )
        self.value: float | None = None
        self.best: dict[str, Any] = {}  # the best epoch's row (epoch, step, lr, losses, metrics)
        # Copies on the network's device (a copy per new best stays off the host); checkpoints move them.
        self.params = net.flat_params.copy()
        self.buffers = {k: v.copy() for k, v in net.named_buffers().items()}

    def on_epoch_end(self, loop, row):
        value = row[self.monitor]
        if self.value is None or (value > self.value if self.higher else value < self.value):
            self.value = value
            self.best = {"epoch": row["epoch"], "step": row["step"]}
            self.best.update({k: v for k, v in row.items() if k not in ("epoch", "step", "seconds")})
            self.params[...] = self.network.flat_params
            for key, buf in self.network.named_buffers().items():
                self.buffers[key][...] = buf

    def restore(self) -> None:
        """Put the best epoch's weights back into the network."""
        self.network.flat_params[...] = self.params
        self.network.load_buffers(self.buffers)

    def load_weights(self, flat_params: np.ndarray, buffers: dict[str, np.ndarray]) -> None:
        """The best epoch's weights from a checkpoint (NumPy arrays) into this callback's device copies."""
        to_device = self.network.device.to_device
        self.params[...] = to_device(flat_params)
        for key, value in buffers.items():
            if key in self.buffers:
                self.buffers[key][...] = to_device(value)

    def state_dict(self):
        return {"best_value": self.value, "best": dict(self.best)}

    def load_state_dict(self, state):
        self.value, self.best = state.get("best_value"), dict(state.get("best") or {})


@CALLBACKS.register("reduce_on_plateau")
class PlateauSchedule(Callback):
    """Feeds the monitored value to a stateful schedule (reduce_on_plateau) after every epoch."""

    listable, flat_state = False, True
    configured_by = "schedule: {type: reduce_on_plateau, ...}"

    def __init__(self, experiment, schedule):
        self.schedule = schedule
        self.monitor, schedule.higher_is_better = resolve_monitor(
            experiment, schedule.monitor, schedule.mode, "schedule.monitor"
        )

    def on_epoch_end(self, loop, row):
        self.schedule.on_epoch_end(row[self.monitor])

    def state_dict(self):
        return {"schedule": self.schedule.state()}

    def load_state_dict(self, state):
        self.schedule.load_state(state.get("schedule") or {})


@CALLBACKS.register("early_stopping")
class EarlyStopping(Callback):
    """Stops when the monitored value has not improved by min_delta for `patience` epochs (train.early_stopping);
    with restore_best the final weights are the best epoch's."""

    listable, flat_state = False, True
    configured_by = "train.early_stopping"

    def __init__(self, experiment, best_weights: BestWeights):
        cfg = experiment.config.train
        early = cfg.early_stopping
        self.patience, self.min_delta, self.restore_best = early.patience, early.min_delta, early.restore_best
        self.monitor, self.higher = resolve_monitor(
            experiment, early.monitor or cfg.monitor, early.mode, "train.early_stopping.monitor"
        )
        self.best_weights = best_weights
        self.value: float | None = None
        self.wait = 0

    def on_epoch_end(self, loop, row):
        value = row[self.monitor]
        sign = 1 if self.higher else -1
        if self.value is None or sign * (value - self.value) > self.min_delta:
            self.value, self.wait = value, 0
            return None
        self.wait += 1
        return "early_stopping" if self.wait > self.patience else None

    def on_train_end(self, loop):
        if loop.status == "completed" and loop.stop_reason == "early_stopping" and self.restore_best:
            if self.best_weights.best:
                self.best_weights.restore()
                loop.restored_best_epoch = self.best_weights.best["epoch"]

    def state_dict(self):
        return {"early_best": self.value, "early_wait": self.wait}

    def load_state_dict(self, state):
        self.value, self.wait = state.get("early_best"), int(state.get("early_wait") or 0)


@CALLBACKS.register("time_limit")
class TimeLimit(Callback):
    """Stops after the epoch in which train.max_seconds of training time (over all sessions) has passed."""

    listable = False
    configured_by = "train.max_seconds"

    def __init__(self, max_seconds: float):
        self.max_seconds = max_seconds

    def on_epoch_end(self, loop, row):
        return "time_limit" if loop.seconds >= self.max_seconds else None


@CALLBACKS.register("threads")
class Threads(Callback):
    """Sets this process's BLAS threads for the run (train.threads) and, with auto, follows the machine's load."""

    listable = False
    configured_by = "train.threads"

    def __init__(self, experiment):
        from nnctl.threads import ThreadControl

        cfg = experiment.config.train
        self.control = ThreadControl(cfg.threads, experiment.network, cfg.batch_size)

    def on_train_start(self, loop):
        loop.threads = self.control.start()

    def on_epoch_end(self, loop, row):
        self.control.recheck(row["epoch"])

    def close(self):
        self.control.stop()


@CALLBACKS.register("metrics_log")
class MetricsLog(Callback):
    """Appends every epoch's row to metrics.csv (before the epoch's checkpoint, so a resumed run never
    misses a row)."""

    listable = False
    configured_by = "(always, with a run directory)"

    def on_train_start(self, loop):
        loop.run.start_metrics()  # every run has metrics.csv, one that diverges in its first epoch too

    def on_epoch_end(self, loop, row):
        loop.run.append_metrics(row)


@CALLBACKS.register("checkpoint")
class Checkpointer(Callback):
    """Writes checkpoints/last.npz and best.npz every output.checkpoint_every epochs, at most once per
    output.checkpoint_min_seconds, always at the end; keeps the last output.keep_last epoch files; on an
    interrupt writes the state of the last completed epoch, so a resumed run continues exactly.

    last.npz and best.npz always agree: whenever last.npz is written, best.npz holds the weights of
    the best epoch its train_state names (written first, so a kill between the two leaves an older
    last.npz whose best is no newer than best.npz)."""

    listable = False
    configured_by = "output.checkpoint_every, checkpoint_min_seconds, keep_last"

    def __init__(self, output, epochs: int, best_weights: BestWeights):
        self.every, self.min_gap, self.keep_last = (
            output.checkpoint_every,
            output.checkpoint_min_seconds,
            output.keep_last,
        )
        self.epochs = epochs
        self.best_weights = best_weights
        self.last_save = time.monotonic()
        self.saved_epoch = 0
        self.best_saved_epoch: int | None = None
        self.snapshot = self.best_snapshot = None

    def on_train_start(self, loop):
        self.saved_epoch = loop.epoch
        self.best_saved_epoch = (self.best_weights.best or {}).get("epoch")
        if not loop.resumed:
            self._save(loop)  # the initial weights: a run that diverges in its first epoch still has a good one
        self.snapshot, self.best_snapshot = loop.checkpoint(), None

    def on_epoch_end(self, loop, row):
        due = row["epoch"] % self.every == 0 and time.monotonic() - self.last_save >= self.min_gap
        if due or row["epoch"] == self.epochs or loop.stop_reason:
            self._save(loop)
            self.saved_epoch, self.last_save = row["epoch"], time.monotonic()
        else:  # kept in memory for an interrupt before the next save
            self.snapshot = loop.checkpoint().copy()
            best = self._best_epoch()
            unsaved = best != self.best_saved_epoch
            if unsaved and (self.best_snapshot is None or self.best_snapshot[0] != best):  # copied once per new best
                self.best_snapshot = (best, self._best_checkpoint(loop).copy())

    def on_train_end(self, loop):
        if loop.status == "interrupted" and self.saved_epoch < loop.epoch:
            # Only the snapshot of the best epoch that last.npz names, and only if best.npz lacks it.
            best = self.best_snapshot
            if best is not None and best[0] == self._best_epoch() and best[0] != self.best_saved_epoch:
                loop.run.save_checkpoint("best", best[1])
            loop.run.save_checkpoint("last", self.snapshot)
        if loop.restored_best_epoch is not None:
            loop.run.save_checkpoint("last", loop.checkpoint({"restored_best_epoch": loop.restored_best_epoch}))

    def _best_epoch(self) -> int | None:
        return (self.best_weights.best or {}).get("epoch")

    def _best_checkpoint(self, loop):
        best = self.best_weights
        meta = loop.checkpoint_meta(
            best.best["epoch"], best.best["step"], {"monitor": best.monitor, "value": best.value}
        )
        return loop.checkpoint(meta=meta, flat_params=best.params, buffers=best.buffers, with_optimizer=False)

    def _save(self, loop) -> None:
        run = loop.run
        if self.best_weights.best and self._best_epoch() != self.best_saved_epoch:
            run.save_checkpoint("best", self._best_checkpoint(loop))
            self.best_saved_epoch = self._best_epoch()
            self.best_snapshot = None  # an older unsaved best must never overwrite this one
        run.save_checkpoint("last", loop.checkpoint())
        if self.keep_last:
            run.save_checkpoint(loop.epoch, loop.checkpoint())
            run.prune_epoch_checkpoints(self.keep_last)


@CALLBACKS.register("summary")
class SummaryWriter(Callback):
    """Writes summary.json: `running` at the start, then status, epochs, time, final and best metrics."""

    listable = False
    configured_by = "(always, with a run directory)"

    def __init__(self, experiment, monitor: str):
        self.experiment, self.monitor = experiment, monitor

    def on_train_start(self, loop):
        cfg = self.experiment.config
        self.summary: dict[str, Any] = {
            "name": cfg.name,
            "status": "running",
            "seed": cfg.seed,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(loop.started)),
            "monitor": self.monitor,
            "parameters": self.experiment.network.param_count,
            "device": self.experiment.device.name,  # where the steps ran (train.device or --device)
            "workers": loop.comm.size,  # data-parallel ranks (nnctl train --workers N, mpiexec)
            "hosts": dict(Counter(loop.comm.hosts)),  # ranks per machine
            "versions": versions(),
        }
        if loop.resumed:
            self.summary.update({k: v for k, v in loop.run.read_summary().items() if k in ("started",)}, resumed=True)
        loop.run.write_summary(self.summary)

    def on_train_end(self, loop):
        result = loop.result
        self.summary.update(
            status=result.status,
            epochs=result.epochs,
            steps=result.steps,
            seconds=round(result.seconds, 3),
            finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
            final=result.final or loop.run.read_summary().get("final", {}),
            best={"monitor": self.monitor, **result.best},
        )
        if result.stop_reason:
            self.summary["stop_reason"] = result.stop_reason
        if loop.comm.size > 1:  # rank 0's time in the per-step collectives (waiting for slower ranks included)
            self.summary["allreduce_seconds"] = round(loop.comm.reduce_seconds, 3)
            # how the optimizer step ran: each rank its part of the buffers, or every rank all of them
            ex = self.experiment
            self.summary["update"] = loop.comm.update_mode(ex.optimizer, ex.network.flat_params.size)
        if loop.threads is not None:
            self.summary["threads"] = loop.threads.summary()
        if result.status == "diverged":
            self.summary["error"] = (
                f"loss or weights became NaN or Inf in epoch {result.epochs + 1}; the last good checkpoint is kept."
            )
        loop.run.write_summary(self.summary)


@CALLBACKS.register("progress")
class Progress(Callback):
    """Hands the loop's progress to a reporter (the console's live bar, a sweep's trial record)."""

    listable = False
    configured_by = "(the console, or a sweep's trial)"

    def __init__(self, reporter):
        self.reporter = reporter

    def on_train_start(self, loop):
        self.reporter.on_start(loop.experiment, loop.run.path if loop.run else None)

    def on_epoch_end(self, loop, row):
        self.reporter.on_epoch(row)

    def on_train_end(self, loop):
        self.reporter.on_end(loop.result)


def standard_callbacks(experiment, run, schedule, extra: list[Callback] = ()) -> tuple[list[Callback], BestWeights]:
    """The loop's own callbacks, from the config, in the order they run, and the best-weights keeper.

    Order matters: the best weights, plateau and stopping decisions see the row first; metrics.csv
    gets the row before the checkpoint that covers it; the summary is written after the last
    checkpoint. A config's `callbacks:`, then `extra` (from the Python API), run after the stopping rules
    and before the run files, so a stop they ask for is checkpointed in the same epoch."""
    cfg = experiment.config
    best = BestWeights(experiment)
    before: list[Callback] = [Threads(experiment), best]
    if schedule.stateful:
        before.append(PlateauSchedule(experiment, schedule))
    if cfg.train.early_stopping is not None:
        before.append(EarlyStopping(experiment, best))
    if cfg.train.max_seconds is not None:
        before.append(TimeLimit(cfg.train.max_seconds))
    for i, spec in enumerate(cfg.callbacks):
        entry = CALLBACKS.get(spec.type)
        if not entry.component.listable:
            raise ConfigError(
                f"callbacks[{i}]: '{spec.type}' is run by the loop itself; set it with {entry.component.configured_by}."
            )
        before.append(CALLBACKS.create(spec))
    before += extra
    after: list[Callback] = []
    if run is not None:
        after = [
            MetricsLog(),
            Checkpointer(cfg.output, cfg.train.epochs, best),
            SummaryWriter(experiment, best.monitor),
        ]
    return before + after, best
