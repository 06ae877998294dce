"""Fused optimizer updates: one pass over memory instead of ten.

Adam written with NumPy ufuncs reads and writes each of p, g, m, v and a scratch
array about ten times per step; for the 670k-parameter MNIST MLP that was 1.6 ms of
a 5 ms training step (2 cores, float32). The loop below touches each element once.
It performs the same operations in the same order, in the parameters' dtype, as
``tinynet.optimizers.Adam`` documents (its NumPy path for non-contiguous arrays is
the twin; ``tests/test_kernels_optim.py`` holds another).

**No subnormal numbers.** On x86 an operation that takes or produces a subnormal
float (below ``tiny``, ~1.2e-38 in float32) costs ~100 cycles instead of one.
TensorFlow runs with the CPU's flush-to-zero mode on; NumPy and Numba do not, so
the update keeps every product it computes out of the subnormal range itself. A
unit that stops receiving gradient (a dead ReLU) has ``m`` shrink by ``beta_1`` and
``v`` by ``beta_2`` every step, so both pass through that range:

- a moment is set to zero once it falls below ``tiny / (1 - beta)`` (``m_floor``,
  ``v_floor``), where the next step's product ``(1 - beta) * (g - m)`` would be
  subnormal;
- ``g * g`` is taken as zero for ``|g| < sqrt(tiny)`` (``g_floor``), and the step
  ``alpha * m / (sqrt(v) + eps)`` for ``|m / (sqrt(v) + eps)| < tiny / alpha``
  (``step_floor``): what flush-to-zero does to those products.

Each is selected before the multiplication, so the subnormal is never formed. The
values flushed are below 1e-34 (float32): no parameter moves by a representable
amount because of them. Measured on the MNIST MLP trained on random labels, whose
ReLUs die in waves (2-core Intel KVM guest): flushing only results below ``tiny``,
an Adam call took 0.66 ms median but 1.75 ms at the 90th percentile and 4 ms at the
99th, with its time following the number of ``m`` entries in (tiny, 1e-36)
(correlation 0.92); before any flushing, 88% of the first layer's ``m`` was
subnormal after three epochs and a call took 2.4-3.0 ms.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from . import parallel_kernel, serial_kernel

#: Arrays with at least this many entries are updated by a parallel kernel; smaller
#: ones serially, where a parallel launch (~0.15 ms on this project's KVM machines)
#: costs more than it saves. The serial loop is vectorised (0.6 ns per float32 entry
#: while the four arrays stay in cache); measured on 2 cores of an Intel KVM guest,
#: serial against parallel: 401,920 entries 250 vs 390 us, 1M 617 vs 816 us, 4M
#: 2.6 vs 1.5 ms.
PARALLEL_MIN_SIZE = 1 << 21


@numba.njit(inline="always")
def _adam_entry(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    i: int,
    one_minus_beta_1: np.floating,
    one_minus_beta_2: np.floating,
    epsilon: np.floating,
    alpha: np.floating,
    floors: tuple[np.floating, ...],
) -> None:
    g_floor, m_floor, v_floor, step_floor = floors
    # ``x - x`` is a zero of x's own type (a literal 0 widens the variable to
    # float64). Selects, not branches, so that LLVM vectorises the loop; each
    # selects an input of a product, so no subnormal is formed (module docstring).
    gi = g[i]
    mi = m[i] + one_minus_beta_1 * (gi - m[i])
    g_sq = gi if abs(gi) >= g_floor else gi - gi
    vi = v[i] + one_minus_beta_2 * (g_sq * g_sq - v[i])
    mi = mi if abs(mi) >= m_floor else mi - mi
    vi = vi if vi >= v_floor else vi - vi
    m[i] = mi
    v[i] = vi
    ratio = mi / (np.sqrt(vi) + epsilon)
    ratio = ratio if abs(ratio) >= step_floor else ratio - ratio
    p[i] = p[i] - alpha * ratio


@parallel_kernel
def _adam_parallel(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    one_minus_beta_1: np.floating,
    one_minus_beta_2: np.floating,
    epsilon: np.floating,
    alpha: np.floating,
    floors: tuple[np.floating, ...],
) -> None:
    for i in prange(p.size):
        _adam_entry(p, g, m, v, i, one_minus_beta_1, one_minus_beta_2, epsilon,
                    alpha, floors)  # fmt: skip


@serial_kernel
def _adam_serial(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    one_minus_beta_1: np.floating,
    one_minus_beta_2: np.floating,
    epsilon: np.floating,
    alpha: np.floating,
    floors: tuple[np.floating, ...],
) -> None:
    for i in range(p.size):
        _adam_entry(p, g, m, v, i, one_minus_beta_1, one_minus_beta_2, epsilon,
                    alpha, floors)  # fmt: skip


def adam_floors(
    dtype: np.dtype, beta_1: float, beta_2: float, alpha: float
) -> tuple[float, float, float, float]:
    """``(g_floor, m_floor, v_floor, step_floor)`` for ``dtype`` (module docstring):
    ``sqrt(tiny)``, ``tiny / (1 - beta_1)``, ``tiny / (1 - beta_2)``, ``tiny /
    alpha`` (infinite for ``alpha = 0``, whose steps are all zero anyway)."""
    tiny = float(np.finfo(dtype).tiny)
    step_floor = tiny / alpha if alpha > 0 else float("inf")
    return (
        float(np.sqrt(tiny)),
        tiny / (1.0 - beta_1),
        tiny / (1.0 - beta_2),
        step_floor,
    )


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
    update = _adam_parallel if p.size >= PARALLEL_MIN_SIZE else _adam_serial
    floors = tuple(dt(f) for f in adam_floors(p.dtype, beta_1, beta_2, alpha))
    update(
        p.reshape(-1),
        g.reshape(-1),
        m.reshape(-1),
        v.reshape(-1),
        dt(1.0 - beta_1),
        dt(1.0 - beta_2),
        dt(epsilon),
        dt(alpha),
        floors,
    )


@serial_kernel
def _flush_below_flat(a: np.ndarray, floor: np.floating) -> None:
    for i in range(a.size):
        x = a[i]
        a[i] = x if abs(x) >= floor else x - x  # keeps a NaN


def flush_below(a: np.ndarray, floor: float) -> np.ndarray:
    """Set the entries of ``a`` with ``|a| < floor`` to zero, in place (one pass for a
    C-contiguous array); the NumPy counterpart of the flushes :func:`adam_update`
    makes per entry, and what the NumPy optimizers apply to their state."""
    if a.flags.c_contiguous:
        _flush_below_flat(a.reshape(-1), a.dtype.type(floor))
    else:
        a[np.abs(a) < floor] = 0
    return a


def decay_floor(dtype: np.dtype, decay: float) -> float:
    """Below this, a state entry multiplied by ``decay`` next step would give a
    subnormal: ``tiny / decay`` (``tiny`` for ``decay = 0``).

    An exponential average that stops receiving input (a dead unit's momentum or
    mean square) is multiplied by ``decay`` every step. Unflushed, it goes
    subnormal, and once it reaches the smallest subnormal, ``decay * x`` rounds back
    to ``x``: it stays there for good, and every later step pays ~100 cycles for it.
    Measured on the MNIST MLP trained on random labels with RMSprop (2-core Intel
    KVM guest): after three epochs 505,176 of its 669,706 mean squares were stuck
    subnormal and an RMSprop step took 4.1 ms (median) instead of ~1 ms.
    """
    tiny = float(np.finfo(dtype).tiny)
    return tiny / decay if decay > 0 else tiny
