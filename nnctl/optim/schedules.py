"""Learning-rate schedules, registered in SCHEDULES.

Time is measured in epochs, fractional within an epoch (t = epoch - 1 + step_in_epoch / steps), so
the rate changes smoothly from step to step. Every schedule takes `warmup_epochs`: the rate rises
linearly to the schedule's value over them, and the schedule's own clock starts after the warm-up.
`reduce_on_plateau` instead multiplies the rate at epoch ends when a monitored value stops improving.
"""

from __future__ import annotations

import math

from pydantic import Field, field_validator

from nnctl.registry import SCHEDULES, Component, Params


class ScheduleParams(Params):
    warmup_epochs: float = Field(
        0.0, ge=0, description="Linear warm-up from 0 to the scheduled rate over these epochs."
    )


class Schedule(Component):
    """lr(t) = base_lr * warm-up(t) * shape(t - warmup)."""

    stateful = False  # reduce_on_plateau reacts to metrics; the others are pure functions of time
    Params = ScheduleParams

    def lr(self, base_lr: float, t: float, total_epochs: float) -> float:
        w = self.warmup_epochs
        ramp = min(1.0, t / w) if w > 0 else 1.0
        return base_lr * ramp * self.shape(max(0.0, t - w), max(total_epochs - w, 1e-12), base_lr)

    def shape(self, t: float, total: float, base_lr: float) -> float:
        return 1.0

    # stateful schedules only
    def on_epoch_end(self, value: float) -> None:  # noqa: B027 - optional hook
        pass

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:  # noqa: B027 - optional hook
        pass


@SCHEDULES.register("constant")
class Constant(Schedule):
    """lr = base lr (after the optional warm-up)."""

    class Params(ScheduleParams):
        pass


@SCHEDULES.register("step")
class Step(Schedule):
    """lr = base * factor^floor(t / every): drop by `factor` every `every` epochs."""

    class Params(ScheduleParams):
        every: float = Field(
            ..., ge=1e-6, description="Epochs between drops (fractions of an epoch work; at least 1e-6)."
        )
        factor: float = Field(0.1, gt=0, le=1, description="Multiplier at each drop.")

    def shape(self, t, total, base_lr):
        return self.factor ** math.floor(t / self.every + 1e-9)


@SCHEDULES.register("multistep")
class MultiStep(Schedule):
    """lr = base * factor^(number of milestones passed)."""

    class Params(ScheduleParams):
        milestones: list[float] = Field(..., min_length=1, description="Epochs at which the rate drops, increasing.")
        factor: float = Field(0.1, gt=0, le=1, description="Multiplier at each milestone.")

        @field_validator("milestones")
        @classmethod
        def _increasing(cls, v: list[float]) -> list[float]:
            if any(b <= a for a, b in zip(v, v[1:], strict=False)):
                raise ValueError(f"milestones must increase, got {v}")
            return v

    def shape(self, t, total, base_lr):
        return self.factor ** sum(t + 1e-9 >= m for m in self.milestones)


@SCHEDULES.register("exponential")
class Exponential(Schedule):
    """lr = base * factor^t: multiplied by `factor` per epoch, continuously."""

    class Params(ScheduleParams):
        factor: float = Field(..., gt=0, le=1, description="Multiplier per epoch.")

    def shape(self, t, total, base_lr):
        return self.factor**t


@SCHEDULES.register("cosine")
class Cosine(Schedule):
    """lr = min_lr + (base - min_lr) (1 + cos(pi t / period)) / 2; with restarts (SGDR), periods grow by t_mult."""

    class Params(ScheduleParams):
        min_lr: float = Field(0.0, ge=0, description="Rate at the end of a period.")
        period: float | None = Field(
            None, gt=0, description="Epochs per cosine period (default: the whole run after warm-up)."
        )
        restarts: bool = Field(False, description="Jump back to the base rate at the end of each period (SGDR).")
        t_mult: float = Field(1.0, ge=1, description="With restarts: each period is t_mult times longer than the last.")

    def shape(self, t, total, base_lr):
        period = self.period or total
        if self.restarts:
            while t >= period - 1e-9:
                t -= period
                period *= self.t_mult
        else:
            t = min(t, period)
        floor = min(self.min_lr / base_lr, 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t / period))


@SCHEDULES.register("reduce_on_plateau")
class ReduceOnPlateau(Schedule):
    """Multiply the rate by `factor` when the monitored value has not improved for `patience` epochs."""

    stateful = True

    class Params(ScheduleParams):
        monitor: str = Field(
            "val_loss", description="Column of metrics.csv to watch (val_loss, train_loss, val_<metric>)."
        )
        mode: str = Field(
            "auto", pattern="^(auto|min|max)$", description="min, max, or auto (max for accuracy-like metrics)."
        )
        factor: float = Field(0.1, gt=0, lt=1, description="Multiplier when the value plateaus.")
        patience: int = Field(5, ge=0, description="Epochs without improvement before reducing.")
        min_delta: float = Field(0.0, ge=0, description="Smallest change that counts as an improvement.")
        min_lr: float = Field(0.0, ge=0, description="The rate is never reduced below this.")

    def setup(self):
        self.scale, self.best, self.wait = 1.0, None, 0
        self.higher_is_better = False  # set by the trainer from mode and the metric

    def lr(self, base_lr, t, total_epochs):
        return max(super().lr(base_lr, t, total_epochs) * self.scale, min(self.min_lr, base_lr))

    def on_epoch_end(self, value: float) -> None:
        sign = 1 if self.higher_is_better else -1
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait > self.patience:
            self.scale *= self.factor
            self.wait = 0

    def state(self) -> dict:
        return {"scale": self.scale, "best": self.best, "wait": self.wait}

    def load_state(self, state: dict) -> None:
        self.scale, self.best, self.wait = state["scale"], state["best"], state["wait"]
