"""Stochastic gradient descent with momentum and Nesterov momentum (Keras 3)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import flag
from ..kernels.optim import decay_floor, flush_below
from .base import Optimizer, _unit


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    Keras' convention, a velocity that already includes the learning rate::

        v = momentum * v - lr * g
        p = p + v                                  (plain momentum)
        p = p + momentum * v - lr * g              (nesterov=True)

    and ``p = p - lr * g`` when ``momentum == 0``. ``weight_decay`` is decoupled
    (``p -= lr * weight_decay * p`` first), as in Keras 3; for plain SGD that is
    the same as an L2 penalty ``wd/2 * ||p||^2``, with momentum it is not.

    ``v`` is set to zero once it falls below ``tiny / momentum``, where the next
    step's product would be subnormal, slow on x86
    (``tinynet.kernels.optim.decay_floor``).
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
        super().__init__(learning_rate, clipnorm=clipnorm, weight_decay=weight_decay)
        self.momentum = _unit(self._name, "momentum", momentum)
        self.nesterov = flag(self._name, "nesterov", nesterov)
        if nesterov and self.momentum == 0:
            raise ValueError(f"{self._name}: nesterov=True needs momentum > 0, got 0")
        self.slots = ("momentum",) if self.momentum > 0 else ()

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        if not self.slots:
            p -= lr * g
            return
        v = self._state["momentum"][key]
        v[...] = self.momentum * v - lr * g
        flush_below(v, decay_floor(p.dtype, self.momentum))
        if self.nesterov:
            p += self.momentum * v - lr * g
        else:
            p += v

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "nesterov": self.nesterov,
        }
