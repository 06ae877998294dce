"""Fused optimizer updates: one pass over memory instead of ten.

Adam written with NumPy ufuncs reads and writes each of p, g, m, v and a scratch
array about ten times per step; for the 670k-parameter MNIST MLP that was 1.6 ms of
a 5 ms training step (2 cores, float32). The loop below touches each element once.
It performs the same operations in the same order, in the parameters' dtype, as
``tinynet.optimizers.Adam`` documents; ``reference.adam_update`` is its NumPy twin.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import parallel_kernel


@parallel_kernel
def _adam_update(p, g, m, v, one_minus_beta_1, one_minus_beta_2, epsilon, alpha):
    for i in prange(p.size):
        gi = g[i]
        mi = m[i] + one_minus_beta_1 * (gi - m[i])
        vi = v[i] + one_minus_beta_2 * (gi * gi - v[i])
        m[i] = mi
        v[i] = vi
        p[i] -= alpha * (mi / (np.sqrt(vi) + epsilon))


def adam_update(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    beta_1: float,
    beta_2: float,
    epsilon: float,
    alpha: float,
) -> None:
    """One Adam step on C-contiguous arrays of one dtype, in place on p, m and v.

    ``alpha`` is the bias-corrected step ``lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``.
    """
    dt = p.dtype.type
    _adam_update(
        p.reshape(-1),
        g.reshape(-1),
        m.reshape(-1),
        v.reshape(-1),
        dt(1.0 - beta_1),
        dt(1.0 - beta_2),
        dt(epsilon),
        dt(alpha),
    )
