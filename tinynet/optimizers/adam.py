"""Adam and AdamW (Keras 3 formulation)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..kernels.optim import adam_floors, adam_update, flush_below
from .base import Optimizer, _non_negative, _positive, _unit


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
        if p.flags.c_contiguous and g.flags.c_contiguous and g.dtype == p.dtype:
            # Same arithmetic in one pass over memory (kernels/optim.py); the NumPy
            # lines below are its twin, for arrays the kernel cannot take flat.
            adam_update(p, g, m, v, self.beta_1, self.beta_2, self.epsilon, self._alpha)
            return
        # The kernel's twin, flushes included (kernels/optim.py says why).
        g_floor, m_floor, v_floor, step_floor = adam_floors(
            p.dtype, self.beta_1, self.beta_2, self._alpha
        )
        np.subtract(g, m, out=tmp)
        tmp *= dt(1.0 - self.beta_1)
        m += tmp
        flush_below(m, m_floor)
        np.copyto(tmp, g)
        flush_below(tmp, g_floor)
        np.square(tmp, out=tmp)
        tmp -= v
        tmp *= dt(1.0 - self.beta_2)
        v += tmp
        flush_below(v, v_floor)
        np.sqrt(v, out=tmp)
        tmp += dt(self.epsilon)
        np.divide(m, tmp, out=tmp)
        flush_below(tmp, step_floor)
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
