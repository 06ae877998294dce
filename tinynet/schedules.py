"""Learning-rate schedules: callables ``schedule(t) -> float``.

A schedule is evaluated by its optimizer at the number of steps taken so far
(``per="step"``) or at the current epoch (``per="epoch"``, set by the training loop
through ``optimizer.set_epoch``). Counting starts at 0, so ``schedule(0)`` is the rate
of the very first update. The formulas follow Keras 3 where Keras has the schedule.

Schedules are rebuilt from ``{"class_name": ..., "config": {...}}`` through the fixed
registry ``SCHEDULES``; nothing is imported or evaluated from a file.
"""

from __future__ import annotations

import math
from typing import Any

from .checks import count, real_number
from .registry import from_spec, to_spec

__all__ = [
    "SCHEDULES",
    "CosineDecay",
    "ExponentialDecay",
    "LearningRateSchedule",
    "StepDecay",
    "schedule_from_config",
    "schedule_to_config",
]

_PER = ("step", "epoch")


class LearningRateSchedule:
    """Base class: subclasses implement ``_value(t)`` and ``get_config``.

    Parameters
    ----------
    initial_learning_rate : the rate at t = 0 (after any warm-up), >= 0.
    per : {"step", "epoch"}
        What ``t`` counts: optimizer steps taken so far, or the current epoch.
    """

    def __init__(self, initial_learning_rate: float, *, per: str) -> None:
        name = type(self).__name__
        if per not in _PER:
            raise ValueError(f"{name}: per must be 'step' or 'epoch', got {per!r}")
        self.per = per
        self.initial_learning_rate = real_number(
            name, "initial_learning_rate", initial_learning_rate
        )
        if self.initial_learning_rate < 0:
            raise ValueError(
                f"{name}: initial_learning_rate must be >= 0, "
                f"got {initial_learning_rate!r}"
            )

    def __call__(self, t: int) -> float:
        t = count(type(self).__name__, "t", t, 0)
        return float(self._value(t))

    def _value(self, t: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class StepDecay(LearningRateSchedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs (or steps).

    ``lr(t) = initial_learning_rate * gamma ** (t // step_size)``
    """

    def __init__(
        self,
        initial_learning_rate: float,
        step_size: int,
        gamma: float = 0.1,
        per: str = "epoch",
    ) -> None:
        super().__init__(initial_learning_rate, per=per)
        name = type(self).__name__
        self.step_size = count(name, "step_size", step_size, 1)
        self.gamma = real_number(name, "gamma", gamma)
        if self.gamma <= 0:
            raise ValueError(f"{name}: gamma must be > 0, got {gamma!r}")

    def _value(self, t: int) -> float:
        return self.initial_learning_rate * self.gamma ** (t // self.step_size)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "step_size": self.step_size,
            "gamma": self.gamma,
            "per": self.per,
        }


class ExponentialDecay(LearningRateSchedule):
    """Exponential decay, continuous or in stairs (Keras ``ExponentialDecay``).

    ``lr(t) = initial_learning_rate * decay_rate ** (t / decay_steps)``, with the
    exponent floored when ``staircase=True``.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_rate: float,
        decay_steps: int,
        staircase: bool = False,
        per: str = "step",
    ) -> None:
        super().__init__(initial_learning_rate, per=per)
        name = type(self).__name__
        self.decay_rate = real_number(name, "decay_rate", decay_rate)
        if self.decay_rate <= 0:
            raise ValueError(f"{name}: decay_rate must be > 0, got {decay_rate!r}")
        self.decay_steps = count(name, "decay_steps", decay_steps, 1)
        if not isinstance(staircase, bool):
            raise TypeError(f"{name}: staircase must be a bool, got {staircase!r}")
        self.staircase = staircase

    def _value(self, t: int) -> float:
        exponent = t / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.initial_learning_rate * float(self.decay_rate**exponent)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_rate": self.decay_rate,
            "decay_steps": self.decay_steps,
            "staircase": self.staircase,
            "per": self.per,
        }


class CosineDecay(LearningRateSchedule):
    """Optional linear warm-up, then cosine decay to ``alpha * initial_learning_rate``.

    As in Keras 3: for ``t < warmup_steps`` the rate climbs linearly from
    ``warmup_from`` to ``initial_learning_rate``; then, with ``s = min(t -
    warmup_steps, decay_steps)``,
    ``lr(t) = initial * ((1 - alpha) * (1 + cos(pi * s / decay_steps)) / 2 + alpha)``,
    so ``decay_steps`` counts the steps after the warm-up, and the rate stays at
    ``alpha * initial`` afterwards.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        alpha: float = 0.0,
        warmup_steps: int = 0,
        warmup_from: float = 0.0,
        per: str = "step",
    ) -> None:
        super().__init__(initial_learning_rate, per=per)
        name = type(self).__name__
        self.decay_steps = count(name, "decay_steps", decay_steps, 1)
        self.alpha = real_number(name, "alpha", alpha)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"{name}: alpha must be in [0, 1], got {alpha!r}")
        self.warmup_steps = count(name, "warmup_steps", warmup_steps, 0)
        self.warmup_from = real_number(name, "warmup_from", warmup_from)
        if self.warmup_from < 0:
            raise ValueError(f"{name}: warmup_from must be >= 0, got {warmup_from!r}")

    def _value(self, t: int) -> float:
        if t < self.warmup_steps:
            fraction = t / self.warmup_steps
            return (
                self.warmup_from
                + (self.initial_learning_rate - self.warmup_from) * fraction
            )
        s = min(t - self.warmup_steps, self.decay_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * s / self.decay_steps))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "warmup_steps": self.warmup_steps,
            "warmup_from": self.warmup_from,
            "per": self.per,
        }


SCHEDULES: dict[str, type[LearningRateSchedule]] = {
    cls.__name__: cls for cls in (StepDecay, ExponentialDecay, CosineDecay)
}


def schedule_to_config(schedule: LearningRateSchedule) -> dict[str, Any]:
    """``{"class_name": "CosineDecay", "config": {...}}`` for a registered schedule."""
    return to_spec(schedule, SCHEDULES, "schedule")


def schedule_from_config(spec: Any) -> LearningRateSchedule:
    """Rebuild a schedule from ``{"class_name": ..., "config": {...}}``."""
    return from_spec(spec, SCHEDULES, "schedule")
