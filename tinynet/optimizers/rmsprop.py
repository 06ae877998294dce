"""RMSprop, plain or centered, with optional momentum (Keras 3)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import flag
from ..kernels.optim import decay_floor, flush_below
from .base import Optimizer, _positive, _unit


class RMSprop(Optimizer):
    """RMSprop in Keras' formulation (epsilon inside the square root).

    For each parameter ``p`` with (clipped) gradient ``g``::

        s = rho * s + (1 - rho) * g**2                    (slot "velocity")
        a = rho * a + (1 - rho) * g                       (centered: "average_gradient")
        inc = lr * g / sqrt(s - a**2 + epsilon)           (no "- a**2" if not centered)
        mom = momentum * mom + inc;  p = p - mom          (p = p - inc if momentum == 0)

    ``s - a**2`` is clamped at 0 (it is >= 0 in exact arithmetic), so float32
    rounding cannot produce NaN where Keras would. ``s``, ``a`` and ``mom`` are set
    to zero once they fall below ``tiny / decay``, where the next step's product
    would be subnormal (``tinynet.kernels.optim.decay_floor`` says why).
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
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(learning_rate, clipnorm=clipnorm, weight_decay=weight_decay)
        self.rho = _unit(self._name, "rho", rho)
        self.momentum = _unit(self._name, "momentum", momentum)
        self.epsilon = _positive(self._name, "epsilon", epsilon)
        self.centered = flag(self._name, "centered", centered)
        self.slots = (
            ("velocity",)
            + (("momentum",) if self.momentum > 0 else ())
            + (("average_gradient",) if self.centered else ())
        )

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        rho, floor = self.rho, decay_floor(p.dtype, self.rho)
        s = self._state["velocity"][key]
        s[...] = rho * s + (1 - rho) * np.square(g)
        flush_below(s, floor)
        if self.centered:
            a = self._state["average_gradient"][key]
            a[...] = rho * a + (1 - rho) * g
            flush_below(a, floor)
            denominator = np.maximum(s - np.square(a), 0) + self.epsilon
        else:
            denominator = s + self.epsilon
        increment = lr * g / np.sqrt(denominator)
        if self.momentum > 0:
            mom = self._state["momentum"][key]
            mom[...] = self.momentum * mom + increment
            flush_below(mom, decay_floor(p.dtype, self.momentum))
            p -= mom
        else:
            p -= increment

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }
