"""Optimizers that update a model's parameter arrays in place.

An optimizer is handed two dicts keyed by dotted parameter names (``"0.W"``,
``"3.gamma"``) on every training step::

    opt = Adam(1e-3, clipnorm=1.0)
    opt.step(params, grads)     # params[k] -= update(grads[k]), in place

The first call fixes the key set, shapes and dtypes; later calls must match them.
Per-parameter state (moments) is keyed by the same names and has the parameter's
dtype, so float32 models do float32 maths. The update rules are those of Keras 3
(same epsilon placement, same bias correction), so the two can be compared closely.

``state_dict()`` / ``load_state_dict()`` carry the step and epoch counters and every
moment as plain numeric arrays; ``to_config`` / ``from_config`` carry the
hyperparameters through the fixed registry ``OPTIMIZERS``. Together they resume
training bit for bit.
"""

from __future__ import annotations

from typing import Any

from ..registry import from_spec, to_spec
from ..schedules import (
    CosineDecay,
    ExponentialDecay,
    LearningRateSchedule,
    StepDecay,
    schedule_from_config,
)
from .adam import Adam, AdamW
from .base import Optimizer, clip_by_global_norm, global_norm
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adam",
    "AdamW",
    "CosineDecay",
    "ExponentialDecay",
    "LearningRateSchedule",
    "Optimizer",
    "RMSprop",
    "StepDecay",
    "clip_by_global_norm",
    "from_config",
    "get",
    "global_norm",
    "to_config",
]


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSprop)
}
_BY_LOWER = {name.lower(): cls for name, cls in OPTIMIZERS.items()}


def get(name_or_optimizer: str | Optimizer, **kwargs: Any) -> Optimizer:
    """An optimizer from a name ("sgd", "adam", "adamw", "rmsprop", any case) and
    constructor arguments, or the given instance unchanged."""
    if isinstance(name_or_optimizer, Optimizer):
        if kwargs:
            raise TypeError(
                f"get: arguments {sorted(kwargs)} cannot be applied to an existing "
                f"{type(name_or_optimizer).__name__} instance"
            )
        return name_or_optimizer
    if not isinstance(name_or_optimizer, str):
        raise TypeError(
            "get: expected an optimizer name or Optimizer instance, "
            f"got {type(name_or_optimizer).__name__}"
        )
    cls = _BY_LOWER.get(name_or_optimizer.lower())
    if cls is None:
        raise ValueError(
            f"get: unknown optimizer {name_or_optimizer!r}; "
            f"known: {', '.join(sorted(_BY_LOWER))}"
        )
    return cls(**kwargs)


def to_config(optimizer: Optimizer) -> dict[str, Any]:
    """``{"class_name": "Adam", "config": {...}}``, JSON-serialisable."""
    return to_spec(optimizer, OPTIMIZERS, "optimizer")


def _rebuild_schedule(config: dict[str, Any]) -> dict[str, Any]:
    # A scheduled learning rate is saved as a nested schedule spec.
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = schedule_from_config(config["learning_rate"])
    return config


def from_config(spec: Any) -> Optimizer:
    """Rebuild an optimizer (and its schedule) from ``to_config`` output."""
    return from_spec(spec, OPTIMIZERS, "optimizer", prepare=_rebuild_schedule)
