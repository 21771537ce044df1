"""The training loop's state as callbacks see it (`Loop`), what it returns (`TrainResult`), and the stop flag."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nnctl.config import dump_config
from nnctl.parallel import SingleProcess
from nnctl.runs.checkpoint import Checkpoint
from nnctl.runs.rundir import RunDir
from nnctl.version import versions

if TYPE_CHECKING:
    from nnctl.build import Experiment

# train_state keys of checkpoint format 1, present even when their callback is not configured.
TRAIN_STATE_DEFAULTS = {"best_value": None, "best": {}, "early_best": None, "early_wait": 0, "schedule": {}}


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
    run_dir: Any
    epochs: int
    steps: int
    seconds: float
    final: dict[str, float]
    best: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    signum: int | None = None
    stop_reason: str | None = None  # early_stopping | time_limit, when a completed run ended before its epochs


@dataclass
class Loop:
    """What callbacks see: the experiment, the run directory, and where the loop is."""

    experiment: Experiment
    run: RunDir | None
    stop: StopFlag
    callbacks: list  # of callbacks.Callback, in the order they run
    epoch: int = 0  # completed epochs
    step: int = 0
    resumed: bool = False
    seconds_before: float = 0.0  # training time of earlier sessions (resume)
    started: float = field(default_factory=time.time)
    status: str = "completed"
    stop_reason: str | None = None
    restored_best_epoch: int | None = None
    threads: Any = None  # the BLAS thread choice (threads.ThreadChoice), set by the Threads callback
    history: list[dict[str, Any]] = field(default_factory=list)
    result: TrainResult | None = None
    comm: Any = field(default_factory=SingleProcess)  # nnctl.parallel: rank, size, hosts of the world

    @property
    def workers(self) -> int:
        return self.comm.size

    @property
    def seconds(self) -> float:
        return self.seconds_before + time.time() - self.started

    def _state_keys(self) -> list[str | None]:
        """Where each callback's state lives in train_state["callbacks"]: its name (name#2 for a second one)."""
        keys: list[str | None] = []
        for cb in self.callbacks:
            taken = sum(1 for k in keys if k is not None and k.split("#")[0] == cb.name)
            keys.append(None if cb.flat_state else cb.name + (f"#{taken + 1}" if taken else ""))
        return keys

    def train_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"epoch": self.epoch, "step": self.step, **TRAIN_STATE_DEFAULTS}
        if self.comm.size > 1:  # absent with one process: those checkpoints stay as they were
            state["workers"] = self.comm.size
        named = {}
        for cb, key in zip(self.callbacks, self._state_keys(), strict=True):
            if key is None:
                state.update(cb.state_dict())
            elif cb.state_dict():
                named[key] = cb.state_dict()
        if named:
            state["callbacks"] = named
        return state

    def load_train_state(self, state: dict[str, Any]) -> None:
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        named = state.get("callbacks") or {}
        for cb, key in zip(self.callbacks, self._state_keys(), strict=True):
            cb.load_state_dict(state if key is None else named.get(key, {}))

    def checkpoint_meta(self, epoch: int, step: int, extra: dict | None = None) -> dict:
        # No wall-clock time in here: the same run must give byte-identical checkpoints.
        ex = self.experiment
        return {
            "config": dump_config(ex.config),
            "epoch": epoch,
            "step": step,
            "task": ex.task,
            "feature_names": ex.feature_names,
            "class_names": ex.class_names,
            "target_names": ex.target_names,
            "num_classes": ex.num_classes,
            "normalize": ex.normalizer.method,
            "target_normalize": ex.target_normalizer.method,
            "versions": versions(),
            **(extra or {}),
        }

    def checkpoint(self, extra: dict | None = None, *, meta=None, flat_params=None, buffers=None, with_optimizer=True):
        """The current state as a Checkpoint (views of the live arrays: save it or copy it)."""
        ex = self.experiment
        if meta is None:
            meta = self.checkpoint_meta(self.epoch, self.step, {"train_state": self.train_state(), **(extra or {})})
        optimizer = ex.optimizer if with_optimizer else None
        return Checkpoint.capture(
            ex.network, ex.normalizer, ex.target_normalizer, meta, optimizer, flat_params, buffers, ex.table
        )  # fmt: skip
