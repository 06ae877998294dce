"""Stochastic gradient descent with momentum, Nesterov and L2 weight decay."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels.optim import decay_floor, flush_below
from .base import Optimizer, _flag, _non_negative, _unit


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 decay.

    With ``g = grad + weight_decay * p`` (L2 penalty ``wd/2 * ||p||^2`` folded into
    the gradient, so it also passes through the momentum) and Keras' convention of
    a velocity that already includes the learning rate::

        v = momentum * v - lr * g
        p = p + v                                  (plain momentum)
        p = p + momentum * v - lr * g              (nesterov=True)

    and ``p = p - lr * g`` when ``momentum == 0``. ``v`` is set to zero once it falls
    below ``tiny / momentum``, where the next step's product would be subnormal
    (``tinynet.kernels.optim.decay_floor`` says why).
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
        flush_below(v, decay_floor(p.dtype, self.momentum))
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
