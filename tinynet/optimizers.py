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

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .kernels.optim import adam_update
from .schedules import (
    CosineDecay,
    ExponentialDecay,
    LearningRateSchedule,
    StepDecay,
    _count,
    _real,
    schedule_from_config,
    schedule_to_config,
)

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
    value = _real(owner, name, value)
    if value <= 0:
        raise ValueError(f"{owner}: {name} must be > 0, got {value!r}")
    return value


def _non_negative(owner: str, name: str, value: Any) -> float:
    value = _real(owner, name, value)
    if value < 0:
        raise ValueError(f"{owner}: {name} must be >= 0, got {value!r}")
    return value


def _unit(owner: str, name: str, value: Any) -> float:
    """A decay factor in [0, 1): 1 would freeze the average forever."""
    value = _real(owner, name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1), got {value!r}")
    return value


def _flag(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a bool, got {value!r}")
    return value


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

    Subclasses set ``slots`` (names of the per-parameter state arrays) and
    implement ``_update(key, p, g, ga, tmp, lr)``.
    """

    slots: tuple[str, ...] = ()

    def __init__(
        self, learning_rate: Any = 0.01, *, clipnorm: float | None = None
    ) -> None:
        self.learning_rate = learning_rate
        self.clipnorm = (
            None if clipnorm is None else _positive(self._name, "clipnorm", clipnorm)
        )
        self.iterations = 0
        self.epoch = 0
        self._specs: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
        self._state: dict[str, dict[str, np.ndarray]] = {}
        self._scratch: dict[np.dtype, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def _name(self) -> str:
        return type(self).__name__

    # ------------------------------------------------------------ learning rate
    @property
    def learning_rate(self) -> float | LearningRateSchedule:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        if not isinstance(value, LearningRateSchedule):
            value = _non_negative(self._name, "learning_rate", value)
        self._learning_rate = value

    @property
    def lr(self) -> float:
        """The rate the next ``step`` will use."""
        rate = self._learning_rate
        if isinstance(rate, LearningRateSchedule):
            return rate(self.iterations if rate.per == "step" else self.epoch)
        return rate

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop at the start of each epoch (0-based)."""
        self.epoch = _count(self._name, "epoch", epoch, 0)

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
        # Two flat buffers per dtype, as long as the largest parameter, hold the
        # temporaries of every update, so a step allocates no arrays.
        sizes: dict[np.dtype, int] = {}
        for shape, dtype in specs.values():
            sizes[dtype] = max(sizes.get(dtype, 0), math.prod(shape))
        self._scratch = {d: (np.empty(n, d), np.empty(n, d)) for d, n in sizes.items()}

    def _check(self, arrays: Any, what: str) -> None:
        """``arrays`` must have exactly the built keys, shapes and dtypes."""
        if not isinstance(arrays, Mapping):
            raise TypeError(
                f"{self._name}: {what} must be a dict, got {type(arrays).__name__}"
            )
        if arrays.keys() != self._specs.keys():
            missing = sorted(self._specs.keys() - arrays.keys())
            unknown = sorted(arrays.keys() - self._specs.keys())
            raise ValueError(
                f"{self._name}: {what} keys differ from the parameters this "
                f"optimizer was built for; missing {missing}, unexpected {unknown}"
            )
        for key, (shape, dtype) in self._specs.items():
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
            flat_a, flat_b = self._scratch[p.dtype]
            ga = flat_a[: p.size].reshape(p.shape)
            tmp = flat_b[: p.size].reshape(p.shape)
            if scale != 1.0:
                np.multiply(g, p.dtype.type(scale), out=ga)
                g = ga
            self._update(key, p, g, ga, tmp, lr)
        self.iterations += 1

    def _begin_step(self, lr: float) -> None:
        """Per-step scalars shared by all parameters (e.g. Adam's bias correction)."""

    def _update(
        self,
        key: str,
        p: np.ndarray,
        g: np.ndarray,
        ga: np.ndarray,
        tmp: np.ndarray,
        lr: float,
    ) -> None:
        """Update ``p`` in place; ``ga`` and ``tmp`` are scratch of p's shape.

        ``g`` may already be ``ga`` (after clipping); ``tmp`` is always free.
        """
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
        for slot, arrays in by_slot.items():
            for key, a in arrays.items():
                np.copyto(self._state[slot][key], a)
        self.iterations, self.epoch = counters["iterations"], counters["epoch"]

    def __repr__(self) -> str:
        config = {**self.get_config(), "learning_rate": self._learning_rate}
        args = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{self._name}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 decay.

    With ``g = grad + weight_decay * p`` (L2 penalty ``wd/2 * ||p||^2`` folded into
    the gradient, so it also passes through the momentum) and Keras' convention of
    a velocity that already includes the learning rate::

        v = momentum * v - lr * g
        p = p + v                                  (plain momentum)
        p = p + momentum * v - lr * g              (nesterov=True)

    and ``p = p - lr * g`` when ``momentum == 0``.
    """

    def __init__(
        self,
        learning_rate: Any = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        *,
        clipnorm: float | None = None,
    ) -> None:
        super().__init__(learning_rate, clipnorm=clipnorm)
        self.momentum = _unit(self._name, "momentum", momentum)
        self.nesterov = _flag(self._name, "nesterov", nesterov)
        if nesterov and self.momentum == 0:
            raise ValueError(f"{self._name}: nesterov=True needs momentum > 0, got 0")
        self.weight_decay = _non_negative(self._name, "weight_decay", weight_decay)
        self.slots = ("momentum",) if self.momentum > 0 else ()

    def _update(self, key, p, g, ga, tmp, lr) -> None:
        dt = p.dtype.type
        if self.weight_decay:
            np.multiply(p, dt(self.weight_decay), out=tmp)
            np.add(g, tmp, out=ga)
            g = ga
        np.multiply(g, dt(lr), out=tmp)
        if not self.slots:
            p -= tmp
            return
        v = self._state["momentum"][key]
        v *= dt(self.momentum)
        v -= tmp
        if self.nesterov:
            p -= tmp
            np.multiply(v, dt(self.momentum), out=tmp)
            p += tmp
        else:
            p += v

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }


# Below this size the fused kernel's launch costs more than the NumPy passes.
_FUSED_MIN_SIZE = 4096


class Adam(Optimizer):
    """Adam in Keras' formulation (epsilon outside the square root, "epsilon hat").

    For each parameter ``p`` with (clipped) gradient ``g``::

        m = m + (1 - beta_1) * (g - m)
        v = v + (1 - beta_2) * (g**2 - v)
        alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)      (t = step, from 1)
        p = p - alpha * m / (sqrt(v) + epsilon)
    """

    slots = ("m", "v")

    def __init__(
        self,
        learning_rate: Any = 1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        *,
        clipnorm: float | None = None,
    ) -> None:
        super().__init__(learning_rate, clipnorm=clipnorm)
        self.beta_1 = _unit(self._name, "beta_1", beta_1)
        self.beta_2 = _unit(self._name, "beta_2", beta_2)
        self.epsilon = _positive(self._name, "epsilon", epsilon)
        self._alpha = 0.0

    def _begin_step(self, lr: float) -> None:
        t = self.iterations + 1
        self._alpha = lr * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)

    def _update(self, key, p, g, ga, tmp, lr) -> None:
        dt = p.dtype.type
        m, v = self._state["m"][key], self._state["v"][key]
        if p.size >= _FUSED_MIN_SIZE and g.flags.c_contiguous and p.flags.c_contiguous:
            # Same arithmetic in one pass over memory (kernels/optim.py).
            adam_update(p, g, m, v, self.beta_1, self.beta_2, self.epsilon, self._alpha)
            return
        np.subtract(g, m, out=tmp)
        tmp *= dt(1.0 - self.beta_1)
        m += tmp
        np.square(g, out=tmp)
        tmp -= v
        tmp *= dt(1.0 - self.beta_2)
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += dt(self.epsilon)
        np.divide(m, tmp, out=tmp)
        tmp *= dt(self._alpha)
        p -= tmp

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras): ``p = p - p * weight_decay * lr``
    before the Adam step, so the decay does not pass through the moments."""

    def __init__(
        self,
        learning_rate: Any = 1e-3,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        *,
        clipnorm: float | None = None,
    ) -> None:
        super().__init__(learning_rate, beta_1, beta_2, epsilon, clipnorm=clipnorm)
        self.weight_decay = _non_negative(self._name, "weight_decay", weight_decay)

    def _update(self, key, p, g, ga, tmp, lr) -> None:
        if self.weight_decay:
            # p * (1 - wd * lr) would round the tiny wd * lr away in float32.
            np.multiply(p, p.dtype.type(self.weight_decay * lr), out=tmp)
            p -= tmp
        super()._update(key, p, g, ga, tmp, lr)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "weight_decay": self.weight_decay}


class RMSprop(Optimizer):
    """RMSprop in Keras' formulation (epsilon inside the square root).

    For each parameter ``p`` with (clipped) gradient ``g``::

        s = rho * s + (1 - rho) * g**2                    (slot "velocity")
        a = rho * a + (1 - rho) * g                       (centered: "average_gradient")
        inc = lr * g / sqrt(s - a**2 + epsilon)           (no "- a**2" if not centered)
        mom = momentum * mom + inc;  p = p - mom          (p = p - inc if momentum == 0)

    ``s - a**2`` is clamped at 0 (it is >= 0 in exact arithmetic), so float32
    rounding cannot produce NaN where Keras would.
    """

    def __init__(
        self,
        learning_rate: Any = 1e-3,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        *,
        clipnorm: float | None = None,
    ) -> None:
        super().__init__(learning_rate, clipnorm=clipnorm)
        self.rho = _unit(self._name, "rho", rho)
        self.momentum = _unit(self._name, "momentum", momentum)
        self.epsilon = _positive(self._name, "epsilon", epsilon)
        self.centered = _flag(self._name, "centered", centered)
        self.slots = (
            ("velocity",)
            + (("momentum",) if self.momentum > 0 else ())
            + (("average_gradient",) if self.centered else ())
        )

    def _update(self, key, p, g, ga, tmp, lr) -> None:
        dt = p.dtype.type
        rho = dt(self.rho)
        s = self._state["velocity"][key]
        s *= rho
        np.square(g, out=tmp)
        tmp *= dt(1.0 - self.rho)
        s += tmp
        if self.centered:
            a = self._state["average_gradient"][key]
            a *= rho
            np.multiply(g, dt(1.0 - self.rho), out=tmp)
            a += tmp
            np.square(a, out=tmp)
            np.subtract(s, tmp, out=tmp)
            # s >= a**2 in exact arithmetic; rounding can break it once the
            # gradient stops varying, and the square root would then give NaN.
            np.maximum(tmp, dt(0.0), out=tmp)
            tmp += dt(self.epsilon)
        else:
            np.add(s, dt(self.epsilon), out=tmp)
        np.sqrt(tmp, out=tmp)
        np.divide(g, tmp, out=tmp)
        tmp *= dt(lr)
        if self.momentum > 0:
            mom = self._state["momentum"][key]
            mom *= dt(self.momentum)
            mom += tmp
            p -= mom
        else:
            p -= tmp

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


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
    name = type(optimizer).__name__
    if OPTIMIZERS.get(name) is not type(optimizer):
        raise TypeError(
            f"{name} is not a registered tinynet optimizer and cannot be saved; "
            f"known optimizers: {', '.join(sorted(OPTIMIZERS))}"
        )
    return {"class_name": name, "config": optimizer.get_config()}


def from_config(spec: Any) -> Optimizer:
    """Rebuild an optimizer (and its schedule) from ``to_config`` output."""
    if not isinstance(spec, dict) or set(spec) != {"class_name", "config"}:
        raise ValueError(
            "an optimizer spec must be a dict with exactly the keys 'class_name' "
            f"and 'config', got {spec!r}"
        )
    name, config = spec["class_name"], spec["config"]
    if name not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer class {name!r}; "
            f"known optimizers: {', '.join(sorted(OPTIMIZERS))}"
        )
    if not isinstance(config, dict):
        raise ValueError(f"config of optimizer {name!r} must be a dict, got {config!r}")
    config = dict(config)
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = schedule_from_config(config["learning_rate"])
    try:
        return OPTIMIZERS[name](**config)
    except TypeError as exc:
        raise ValueError(f"bad config for optimizer {name!r}: {exc}") from exc
