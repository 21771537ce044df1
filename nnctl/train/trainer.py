"""The training loop: run an epoch of shuffled mini-batches, evaluate, hand the row to the callbacks.

Per-step work is only the numerics (`run_epoch`). Everything else (best weights, early stopping,
plateau, time limit, metrics.csv, checkpoints, summary, progress) is a callback in callbacks.py with
its own state. Everything random is a pure function of (seed, epoch, step), and every callback's
state is saved at each checkpoint, so a resumed run continues exactly.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from nnctl import batchsplit, registry
from nnctl.build import Experiment
from nnctl.config import dump_config
from nnctl.errors import ConfigError
from nnctl.parallel import SingleProcess, shard
from nnctl.rng import STREAM_AUGMENT, STREAM_LAYERS, STREAM_SHUFFLE, rng_for
from nnctl.runs.rundir import RunDir
from nnctl.train.callbacks import Callback, Progress, standard_callbacks
from nnctl.train.loop import Loop, StopFlag, TrainResult

SINGLE = SingleProcess()
# A training split up to this size (x and y) is permuted once an epoch and batched by slicing
# (_in_epoch_order); a larger one is gathered batch by batch, without a second copy in memory.
PERMUTE_BYTES = 16 << 20

__all__ = ["Loop", "Reporter", "Resume", "StopFlag", "TrainResult", "epoch_order", "run_epoch", "train"]


class Reporter(Protocol):
    def on_start(self, experiment: Experiment, run_dir) -> None: ...
    def on_epoch(self, row: dict[str, Any]) -> None: ...
    def on_end(self, result: TrainResult) -> None: ...


@dataclass
class Resume:
    """Where a resumed run starts: the checkpoint's train_state, the best epoch's weights (from best.npz)
    and the training time of earlier sessions."""

    train_state: dict[str, Any]
    best_params: np.ndarray | None = None
    best_buffers: dict[str, np.ndarray] | None = None
    seconds: float = 0.0


def epoch_order(seed: int, epoch: int, n: int, shuffle: bool) -> np.ndarray:
    """The sample order of an epoch: a pure function of (seed, epoch), so a resumed run sees the same batches."""
    if not shuffle:
        return np.arange(n)
    return rng_for(seed, STREAM_SHUFFLE, epoch).permutation(n)


def run_epoch(
    experiment: Experiment, epoch: int, schedule, base_lr: float, stop: StopFlag, comm=SINGLE
) -> tuple[str, dict]:
    """One epoch of mini-batch steps: ("completed" | "diverged" | "interrupted", the epoch's sums).

    Under MPI (`comm.size` > 1) every rank walks the same order and takes its contiguous slice of
    each global batch of train.batch_size; its gradient (a mean over its slice) is scaled by
    n_local / n_global (with sample or class weights: its share of the batch's total weight) and
    summed over the ranks with one Allreduce, so the update is the
    one-process update on the global batch. Penalties are added after the Allreduce (once), to
    the same weights on every rank. With one process nothing is scaled and the streams are today's."""
    cfg = experiment.config
    net, loss_fn, opt = experiment.network, experiment.loss, experiment.optimizer
    x_all, y_all = experiment.splits["train"].x, experiment.splits["train"].y
    n, batch_size, epochs = len(x_all), cfg.train.batch_size, cfg.train.epochs
    steps_per_epoch = math.ceil(n / batch_size)
    constant_lr = cfg.schedule.type == "constant" and schedule.warmup_epochs == 0
    order = epoch_order(cfg.seed, epoch, n, cfg.train.shuffle)
    parallel = comm.size > 1
    weighted = getattr(loss_fn, "weighted", False)
    # Per-rank streams under MPI: pure functions of (seed, epoch, rank); with one process, today's.
    augment_rng = rng_for(cfg.seed, STREAM_AUGMENT, epoch, *comm.stream) if experiment.augmentations else None
    net.start_epoch(cfg.seed, epoch, STREAM_LAYERS, comm.stream)  # dropout masks and noise
    ordered = _in_epoch_order(experiment, order)  # (x, y) permuted once: a batch is a slice of them
    if ordered is None:
        resident = experiment.resident("train", training=True)  # on a GPU: the split moved once, batched there
        batch = _batcher(experiment, resident, augment_rng)
    else:
        x_ordered, y_ordered = ordered
    part = comm.update_part(opt, net.flat_params.size)  # the entries this rank's step updates (None: all)
    stepper = opt if part is None else opt.part(part)
    if part is None and _worth_threaded_step(experiment):
        stepper = _ThreadedStep(opt)
    # Looked up once an epoch: a tiny network's step pays for every attribute lookup (with the identity
    # collectives skipped below, ~0.1 us of the 0.4 us/step this loop's rewrite saved, slices the rest).
    forward, backward, loss_forward, loss_backward = net.forward, net.backward, loss_fn.forward, loss_fn.backward
    step, penalties, constraints, isfinite = stepper.step, experiment.penalties, experiment.constraints, math.isfinite
    loss_sum = penalty_sum = 0.0
    status, last_lr = "completed", base_lr
    for k, start in enumerate(range(0, n, batch_size)):
        lr = base_lr if constant_lr else schedule.lr(base_lr, epoch - 1 + k / steps_per_epoch, epochs)
        end = min(start + batch_size, n)
        lo, hi = start, end  # this rank's part of the batch: positions in the epoch's order
        share = 1.0  # this rank's part of the global batch's loss: its count, or its weight (sample/class weights)
        if parallel:
            mine = shard(end - start, comm.rank, comm.size)
            lo, hi = start + mine.start, start + mine.stop
            if weighted:
                total = loss_fn.batch_weight(y_all.take(order[start:end], axis=0))
                share = loss_fn.batch_weight(y_all.take(order[lo:hi], axis=0)) / total if total > 0 else 0.0
            else:
                share = (hi - lo) / (end - start)
            comm.share = share  # for synchronized batch norm's backward
        batch_loss = 0.0
        if hi > lo:
            xb, yb = (x_ordered[lo:hi], y_ordered[lo:hi]) if ordered is not None else batch(order[lo:hi])
            batch_loss = loss_forward(forward(xb, training=True), yb)
        finite = isfinite(batch_loss)
        if finite and hi > lo:
            backward(loss_backward())
        elif parallel:
            net.flat_grads.fill(0)  # nothing to add (an empty slice), or a NaN that the flag reports
        if parallel:
            diverged, signum = comm.reduce_step(net.flat_grads, share, not finite, stop.signum, part)
        else:  # one process: reduce_step is the identity, not worth its call
            diverged, signum = not finite, stop.signum
        if diverged:
            status = "diverged"
            break
        # this rank's part of the batch's loss x its length; summed over the ranks at the epoch's end
        loss_sum += batch_loss * ((end - start) * share if weighted else hi - lo)
        for reg, w, g in penalties:
            penalty_sum += reg.value(w) * (end - start)
            reg.add_grad(w, g)
        step(lr)
        if parallel:
            comm.gather(net.flat_params, part)
        for constraint, w in constraints:
            constraint.project(w)
        last_lr = lr
        if signum is not None:
            if parallel:
                stop.signum = signum  # every rank stops at this step, with the signal any rank got
            status = "interrupted"
            break
    _join_parts(comm, opt, stepper, part)
    sums = {"loss": loss_sum, "penalty": penalty_sum, "lr": last_lr}
    if status != "completed":
        return status, sums
    sums["loss"] = comm.sum(loss_sum)
    if parallel:  # batch statistics of rank 0 (as DDP's broadcast_buffers), so evaluation agrees everywhere
        for buffer in net.named_buffers().values():
            comm.broadcast(buffer)
    if not bool(net.xp.isfinite(net.flat_params).all()):  # a NaN/Inf gradient with a finite loss
        return "diverged", sums
    return "completed", sums


def _join_parts(comm, opt, stepper, part) -> None:
    """After a sharded update (comm.update_part): every rank's part of the optimizer state onto every rank,
    and the step count, so the state is whole wherever it is saved or read; and of the last step's
    gradients (each rank summed only its part), which the tensorboard callback's histograms read. A step
    over threads (_ThreadedStep) gives back its step count."""
    if isinstance(stepper, _ThreadedStep):
        opt.join(stepper.parts[0])
    if part is not None:
        for key in sorted(opt.state):
            comm.gather(opt.state[key], part)
        comm.gather(opt.grads, part)
        opt.join(stepper)


class _ThreadedStep:
    """The optimizer step over the threads a split batch runs on: each thread updates its contiguous part of
    the flat buffers (`Optimizer.part`, as a data-parallel rank's sharded update does), so every entry is the
    whole step's, bit for bit. 2 threads, one step (tests/train/test_threaded_step.py has the equivalence):
    Adam over 420k parameters 0.46 -> 0.29 ms, over 2M 3.85 -> 2.18 ms; SGD with momentum over 2M 0.87 ->
    0.56 ms, over 420k (the benchmark CNN's, in cache) no faster (0.12 ms either way)."""

    def __init__(self, optimizer):
        self.parts = [optimizer.part(slice(a, b)) for a, b in batchsplit.bounds(optimizer.params.size)]

    def step(self, lr: float) -> None:
        batchsplit.together([functools.partial(part.step, lr) for part in self.parts])


def _worth_threaded_step(experiment: Experiment) -> bool:
    """Batches split over threads this epoch (batchsplit.on), on the CPU, an elementwise rule over buffers of
    at least batchsplit.MIN_ELEMENTS entries."""
    opt = experiment.optimizer
    return (
        batchsplit.on
        and experiment.device.kind == "cpu"
        and opt.params.size >= batchsplit.MIN_ELEMENTS
        and opt.shardable()
    )


def _in_epoch_order(experiment: Experiment, order: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The training split's x and y permuted into the epoch's order (one take each), so that every batch
    is a slice, a view, instead of two takes (~0.3 us of a tiny network's step); None where batches
    are gathered one by one instead: off the CPU, with augmentations (they change each batch's copy),
    for memory-mapped data, or for a split over PERMUTE_BYTES (the epoch's copy would double its memory)."""
    split = experiment.splits["train"]
    x, y = split.x, split.y
    if experiment.device.kind != "cpu" or experiment.augmentations:
        return None
    if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)) or x.nbytes + y.nbytes > PERMUTE_BYTES:
        return None
    return x.take(order, axis=0), y.take(order, axis=0)


def _batcher(experiment: Experiment, resident, augment_rng) -> Callable[[np.ndarray], tuple[Any, Any]]:
    """rows -> a training batch on the device: gathered there from the resident split, or taken on the
    host, augmented (from the epoch's Generator) and moved. Made once an epoch, as a tiny network's
    step pays for every lookup; on the CPU without augmentations a batch is the two takes alone."""
    to_device = experiment.device.to_device
    if resident is not None:
        x, y = resident.x, resident.y

        def gather(rows):
            rows = to_device(rows)
            return x.take(rows, axis=0), y.take(rows, axis=0)

        return gather
    split, augmentations = experiment.splits["train"], experiment.augmentations
    x, y = split.x, split.y
    if experiment.device.kind == "cpu" and not augmentations:  # to_device is the identity there
        return lambda rows: (x.take(rows, axis=0), y.take(rows, axis=0))

    def take(rows):
        xb, yb = x.take(rows, axis=0), y.take(rows, axis=0)
        for augmentation in augmentations:
            xb = augmentation(xb, augment_rng)
        return to_device(xb), to_device(yb)

    return take


def _synced_layers(net) -> list:
    return [layer for _, layer in net.all_layers() if getattr(layer, "sync", False)]


def check_workers(experiment: Experiment, workers: int) -> None:
    """A user error when the experiment cannot train on `workers` ranks (before any run directory exists)."""
    if workers > 1 and experiment.device.kind != "cpu":
        raise ConfigError(
            f"--workers {workers} trains on the CPU only (the ranks' Allreduce takes host buffers); "
            f"device {experiment.device.name} cannot be combined with it. Use one of the two."
        )
    if workers > 1:
        for column, metric in experiment.metrics.items():
            if not metric.reducible:
                raise ConfigError(
                    f"metrics: '{column}' cannot be computed on {workers} workers: its class does not implement "
                    "state() and merge(), which data-parallel evaluation uses to add up the ranks' parts."
                )
    n, batch = len(experiment.splits["train"]), experiment.config.train.batch_size
    smallest = min(batch, n % batch or batch, n)
    if _synced_layers(experiment.network) and smallest < workers:
        raise ConfigError(
            f"batch_norm sync: true needs at least one sample per worker in every global batch, but with "
            f"{n} training samples and train.batch_size {batch} a batch has {smallest} for {workers} workers; "
            "choose a batch size (and a last batch) of at least the number of workers."
        )


def _join_world(experiment: Experiment, comm) -> None:
    """Start every rank from rank 0's state (parameters, layer buffers, optimizer state) and give
    synchronized batch-norm layers the comm."""
    net, opt = experiment.network, experiment.optimizer
    synced = _synced_layers(net)
    comm.broadcast(net.flat_params)
    for buffer in net.named_buffers().values():
        comm.broadcast(buffer)
    for key in sorted(opt.state):
        comm.broadcast(opt.state[key])
    for layer in synced:
        layer.comm = comm


def epoch_row(experiment: Experiment, loop: Loop, sums: dict, started: float) -> dict[str, Any]:
    """The epoch's line of metrics.csv: epoch, step, lr, train_loss[, train_penalty], val_*, seconds."""
    n = len(experiment.splits["train"])
    row: dict[str, Any] = {"epoch": loop.epoch, "step": loop.step, "lr": sums["lr"], "train_loss": sums["loss"] / n}
    if experiment.penalties:
        row["train_penalty"] = sums["penalty"] / n  # reported apart from the data loss
    scores = experiment.evaluate("val", comm=loop.comm) if loop.comm.size > 1 else experiment.evaluate("val")
    row.update({f"val_{k}": v for k, v in scores.items()})
    row["seconds"] = time.perf_counter() - started  # the epoch's steps and its evaluation
    return row


def _result(loop: Loop, best) -> TrainResult:
    last = loop.history[-1] if loop.history else {}
    final = {k: v for k, v in last.items() if k not in ("epoch", "step", "seconds", "lr")}
    return TrainResult(
        loop.status, loop.run.path if loop.run else None, loop.epoch, loop.step, loop.seconds, final,
        best.best, loop.history, loop.stop.signum, loop.stop_reason,
    )  # fmt: skip


def _agree_on_stop(loop: Loop, stop: StopFlag, comm) -> int | None:
    """The signal to stop on after this epoch, if any. With several ranks every rank stops after the same
    epoch: rank 0's stop reason (a time limit is measured there) and any rank's signal."""
    signum = stop.signum
    if comm.size > 1:
        agreed = comm.allgather((loop.stop_reason, signum))
        loop.stop_reason = agreed[0][0]
        signum = next((sig for _, sig in agreed if sig is not None), None)
        if signum is not None:  # (a signal arriving after the allgather stays set: the next step shares it)
            stop.signum = signum
    return signum


def train(
    experiment: Experiment,
    run: RunDir | None = None,
    reporter: Reporter | None = None,
    stop: StopFlag | None = None,
    resume: Resume | None = None,
    callbacks: list[Callback] = (),
    comm=SINGLE,
) -> TrainResult:
    """Train `experiment` into `run` (None: in memory only). `callbacks` run after the standard ones.

    `comm` (nnctl.parallel) is the data-parallel world: every rank calls train() with the same
    experiment; only rank 0 gets a `run` and a `reporter` (the others pass None)."""
    cfg = experiment.config
    stop = stop or StopFlag()
    schedule = registry.SCHEDULES.create(cfg.schedule)
    standard, best = standard_callbacks(experiment, run, schedule, list(callbacks))
    progress = [Progress(reporter)] if reporter else []
    loop = Loop(experiment, run, stop, standard + progress, resumed=resume is not None, comm=comm)
    if comm.size > 1:
        _join_world(experiment, comm)
    if resume:
        loop.load_train_state(resume.train_state)
        loop.seconds_before = resume.seconds
        if resume.best_params is not None:
            best.load_weights(resume.best_params, resume.best_buffers or {})
    elif run is not None:
        run.write_config(dump_config(cfg))
        run.write_model(experiment.network.summary())
    try:
        steps_per_epoch = math.ceil(len(experiment.splits["train"]) / cfg.train.batch_size)
        for cb in loop.callbacks:
            cb.on_train_start(loop)

        # Overflow on the way to a NaN loss is expected when training diverges; the loss check reports it.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for epoch in range(loop.epoch + 1, cfg.train.epochs + 1):
                t0 = time.perf_counter()
                loop.status, sums = run_epoch(experiment, epoch, schedule, cfg.optimizer.lr, stop, comm)
                if loop.status != "completed":
                    break
                loop.epoch, loop.step = epoch, loop.step + steps_per_epoch
                row = epoch_row(experiment, loop, sums, t0)
                loop.history.append(row)
                for cb in loop.callbacks:
                    reason = cb.on_epoch_end(loop, row)
                    if reason and not loop.stop_reason:
                        loop.stop_reason = reason if isinstance(reason, str) else cb.name
                signum = _agree_on_stop(loop, stop, comm)
                if loop.stop_reason:
                    break
                if signum is not None:  # a signal during evaluation, or a pruner
                    loop.status = "interrupted"
                    break

        loop.result = _result(loop, best)
        # The loop's own callbacks finish first, so the run directory is complete (final checkpoint,
        # summary.json) when a config's callbacks end (an MLflow upload sees the finished run).
        for cb in sorted(loop.callbacks, key=lambda cb: cb.listable):
            cb.on_train_end(loop)
        return loop.result
    finally:  # also when a callback or a step raises: threads, files and the like are released
        for cb in loop.callbacks:
            cb.close()
