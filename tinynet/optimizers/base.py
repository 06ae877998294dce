"""The Optimizer base class: key/shape checks, clipping, decoupled weight decay,
learning-rate schedules and state for exact resume. The update rules live beside
it, each written as Keras 3 writes it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..checks import count, real_number
from ..schedules import LearningRateSchedule, schedule_to_config
from ..weights import copy_checked

_COUNTERS = ("iterations", "epoch")


def global_norm(grads: Mapping[str, np.ndarray]) -> float:
    """``sqrt(sum_k sum(grads[k] ** 2))``, accumulated in float64 across arrays."""
    total = 0.0
    for g in grads.values():
        sq = float(np.vdot(g, g))
        if not math.isfinite(sq) and g.dtype != np.float64:
            # float32 squares overflow near 1.8e19, long before the norm does.
            g64 = g.astype(np.float64)
            sq = float(np.vdot(g64, g64))
        total += sq
    return math.sqrt(total)


def clip_by_global_norm(grads: Mapping[str, np.ndarray], max_norm: float) -> float:
    """Scale every array of ``grads`` IN PLACE so that their global norm <= max_norm.

    Returns the global norm before clipping. Arrays are left untouched when the norm
    is already within bounds or is not finite.
    """
    max_norm = _positive("clip_by_global_norm", "max_norm", max_norm)
    norm = global_norm(grads)
    if math.isfinite(norm) and norm > max_norm:
        for g in grads.values():
            g *= g.dtype.type(max_norm / norm)
    return norm


def _positive(owner: str, name: str, value: Any) -> float:
    number = real_number(owner, name, value)
    if number <= 0:
        raise ValueError(f"{owner}: {name} must be > 0, got {number!r}")
    return number


def _non_negative(owner: str, name: str, value: Any) -> float:
    number = real_number(owner, name, value)
    if number < 0:
        raise ValueError(f"{owner}: {name} must be >= 0, got {number!r}")
    return number


def _unit(owner: str, name: str, value: Any) -> float:
    """A decay factor in [0, 1): 1 would freeze the average forever."""
    number = real_number(owner, name, value)
    if not 0.0 <= number < 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1), got {number!r}")
    return number


class Optimizer:
    """Base class: bookkeeping, validation, clipping and state; subclasses do maths.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule
        A constant rate, or a schedule evaluated at ``iterations`` (``per="step"``)
        or at ``epoch`` (``per="epoch"``). A float may be reassigned at any time
        (``opt.learning_rate = 1e-4``), e.g. by a scheduler callback.
    clipnorm : float, optional
        If set, gradients are scaled by ``clipnorm / max(norm, clipnorm)`` where
        ``norm`` is the global norm over all arrays (Keras' ``global_clipnorm``).
        The caller's gradient arrays are never modified.
    weight_decay : float
        Decoupled weight decay, as every Keras 3 optimizer applies it: before each
        update, ``p -= lr * weight_decay * p`` (not added to the gradient, so it
        does not pass through momentum or the moments). 0 turns it off.

    Subclasses set ``slots`` (names of the per-parameter state arrays) and
    implement ``_update(key, p, g, lr)``.
    """

    slots: tuple[str, ...] = ()

    def __init__(
        self,
        learning_rate: Any = 0.01,
        *,
        clipnorm: float | None = None,
        weight_decay: float = 0.0,
    ) -> None:
        self.learning_rate = learning_rate
        self.clipnorm = (
            None if clipnorm is None else _positive(self._name, "clipnorm", clipnorm)
        )
        self.weight_decay = _non_negative(self._name, "weight_decay", weight_decay)
        self.iterations = 0
        self.epoch = 0
        self._specs: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
        self._state: dict[str, dict[str, np.ndarray]] = {}

    @property
    def _name(self) -> str:
        return type(self).__name__

    # ------------------------------------------------------------ learning rate
    @property
    def learning_rate(self) -> float | LearningRateSchedule:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        self._learning_rate: float | LearningRateSchedule = (
            value
            if isinstance(value, LearningRateSchedule)
            else _non_negative(self._name, "learning_rate", value)
        )

    @property
    def lr(self) -> float:
        """The rate the next ``step`` will use."""
        rate = self._learning_rate
        if isinstance(rate, LearningRateSchedule):
            return rate(self.iterations if rate.per == "step" else self.epoch)
        return rate

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop at the start of each epoch (0-based)."""
        self.epoch = count(self._name, "epoch", epoch, 0)

    # ------------------------------------------------------------------- update
    def build(self, params: Mapping[str, np.ndarray]) -> None:
        """Create zeroed state for ``params``; later calls only check them."""
        if self._specs is not None:
            self._check(params, "params")
            return
        if not isinstance(params, Mapping) or not params:
            raise TypeError(
                f"{self._name}: params must be a non-empty dict of arrays, "
                f"got {type(params).__name__}"
            )
        specs = {}
        for key, p in params.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{self._name}: parameter names must be str, got {key!r}"
                )
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                raise TypeError(
                    f"{self._name}: parameter {key!r} must be a floating ndarray, "
                    f"got {getattr(p, 'dtype', type(p).__name__)}"
                )
            specs[key] = (p.shape, p.dtype)
        self._set_specs(specs)

    def _set_specs(self, specs: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        self._specs = specs
        self._state = {
            slot: {k: np.zeros(shape, dtype) for k, (shape, dtype) in specs.items()}
            for slot in self.slots
        }

    def _check(self, arrays: Any, what: str) -> None:
        """``arrays`` must have exactly the built keys, shapes and dtypes."""
        specs = self._specs
        if specs is None:
            raise RuntimeError(f"{self._name}: {what} checked before build()")
        if not isinstance(arrays, Mapping):
            raise TypeError(
                f"{self._name}: {what} must be a dict, got {type(arrays).__name__}"
            )
        if arrays.keys() != specs.keys():
            missing = sorted(specs.keys() - arrays.keys())
            unknown = sorted(arrays.keys() - specs.keys())
            raise ValueError(
                f"{self._name}: {what} keys differ from the parameters this "
                f"optimizer was built for; missing {missing}, unexpected {unknown}"
            )
        for key, (shape, dtype) in specs.items():
            a = arrays[key]
            if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != dtype:
                raise ValueError(
                    f"{self._name}: {what}[{key!r}] must be an ndarray of shape "
                    f"{shape} and dtype {dtype}, got "
                    f"{getattr(a, 'shape', type(a).__name__)} "
                    f"{getattr(a, 'dtype', '')}"
                )

    def step(
        self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]
    ) -> None:
        """Apply one update to every array of ``params`` in place.

        Parameters
        ----------
        params : dict[str, ndarray]
            Parameter arrays by dotted name; modified in place.
        grads : dict[str, ndarray]
            Gradients with the same keys, shapes and dtypes; not modified.
        """
        self.build(params)
        self._check(grads, "grads")
        for key, p in params.items():
            if not p.flags.writeable:
                raise ValueError(f"{self._name}: params[{key!r}] is read-only")
        lr = self.lr
        scale = 1.0
        if self.clipnorm is not None:
            norm = global_norm(grads)
            if math.isfinite(norm) and norm > self.clipnorm:
                scale = self.clipnorm / norm
        self._begin_step(lr)
        for key, p in params.items():
            g = grads[key]
            if scale != 1.0:
                g = g * p.dtype.type(scale)
            if self.weight_decay:
                # Not p *= 1 - lr * wd: in float32 that rounds a tiny lr * wd away.
                p -= p * p.dtype.type(lr * self.weight_decay)
            self._update(key, p, g, lr)
        self.iterations += 1

    def _begin_step(self, lr: float) -> None:
        """Per-step scalars shared by all parameters (e.g. Adam's bias correction)."""

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        """Update ``p`` (and this parameter's state) in place from its gradient."""
        raise NotImplementedError(f"{self._name} does not implement _update")

    # ------------------------------------------------------------- save / load
    def get_config(self) -> dict[str, Any]:
        rate = self._learning_rate
        return {
            "learning_rate": (
                schedule_to_config(rate)
                if isinstance(rate, LearningRateSchedule)
                else rate
            ),
            "clipnorm": self.clipnorm,
            "weight_decay": self.weight_decay,
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the counters (0-d int64) and of every ``"<slot>.<param>"``."""
        state = {name: np.array(getattr(self, name), np.int64) for name in _COUNTERS}
        for slot, arrays in self._state.items():
            for key, a in arrays.items():
                state[f"{slot}.{key}"] = a.copy()
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore a ``state_dict``; every key, shape and dtype is checked first.

        An unbuilt optimizer takes its parameter names, shapes and dtypes from the
        state; a built one requires them to match. On error nothing is changed.
        """
        name = self._name
        if not isinstance(state, Mapping):
            raise TypeError(f"{name}: state must be a dict, got {type(state).__name__}")
        counters = {}
        for c in _COUNTERS:
            a = state.get(c)
            if a is None:
                raise ValueError(f"{name}: state is missing the key {c!r}")
            if not (
                isinstance(a, np.ndarray) and a.shape == () and a.dtype == np.int64
            ):
                raise ValueError(
                    f"{name}: state[{c!r}] must be a 0-d int64 array, got {a!r}"
                )
            if a < 0:
                raise ValueError(f"{name}: state[{c!r}] must be >= 0, got {int(a)}")
            counters[c] = int(a)
        by_slot: dict[str, dict[str, np.ndarray]] = {s: {} for s in self.slots}
        for k, a in state.items():
            if k in _COUNTERS:
                continue
            slot, _, key = k.partition(".")
            if slot not in by_slot or not key:
                expected = ", ".join(f"'{s}.<param>'" for s in self.slots) or "none"
                raise ValueError(
                    f"{name}: unexpected state key {k!r}; expected 'iterations', "
                    f"'epoch' and per-parameter keys ({expected})"
                )
            if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
                raise ValueError(
                    f"{name}: state[{k!r}] must be a floating ndarray, "
                    f"got {getattr(a, 'dtype', type(a).__name__)}"
                )
            by_slot[slot][key] = a
        keys = set().union(*by_slot.values()) if by_slot else set()
        if self._specs is not None and self.slots:
            unknown = sorted(keys - self._specs.keys())
            if unknown:
                raise ValueError(
                    f"{name}: state holds parameters this optimizer was not built "
                    f"for: {unknown}"
                )
            keys |= self._specs.keys()
        specs = dict(self._specs or {})
        for slot, arrays in by_slot.items():
            for key in sorted(keys):
                if key not in arrays:
                    raise ValueError(f"{name}: state is missing the key '{slot}.{key}'")
                a = arrays[key]
                if key not in specs:
                    specs[key] = (a.shape, a.dtype)
                if (a.shape, a.dtype) != specs[key]:
                    shape, dtype = specs[key]
                    raise ValueError(
                        f"{name}: state['{slot}.{key}'] must have shape {shape} and "
                        f"dtype {dtype}, got {a.shape} {a.dtype}"
                    )
        if self._specs is None and keys:
            self._set_specs(specs)
        copy_checked(
            {
                f"{slot}.{k}": a
                for slot, arrs in self._state.items()
                for k, a in arrs.items()
            },
            {k: a for k, a in state.items() if k not in _COUNTERS},
            source=f"{name}: state",
            same_dtype=True,
        )
        self.iterations, self.epoch = counters["iterations"], counters["epoch"]

    def __repr__(self) -> str:
        config = {**self.get_config(), "learning_rate": self._learning_rate}
        args = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{self._name}({args})"
