"""Compute kernels (convolution, pooling, dropout, loss, optimizer updates): the only
place that uses Numba.

Kernels take arrays and ints, write into an ``out`` array the caller allocates, and
return it. They are compiled lazily on first call (no eager signatures), and
``cache=True`` stores the machine code next to the source, so later processes load it
instead of compiling. ``reference`` holds a naive NumPy twin of every kernel, with
the same signature, which the tests compare it with. The layers call the
spec-level entry points (``conv.conv2d``, ``pool.max_pool2d``, ``dropout.dropout``);
the composite steps of ``tinynet.plan`` call the drivers below them.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

Kernel = TypeVar("Kernel", bound=Callable[..., Any])

PADDINGS = ("valid", "same")

# Numba's default threading layer here is OpenMP, whose idle workers spin while
# OpenBLAS's threads run the matmuls in between (and vice versa) on the same cores:
# measured on 2 cores, the 13x13x32->64 conv forward went from 5 ms (median) to 8 ms
# and the median training step of the MNIST convnet from ~30 ms to 80+ ms. The
# workqueue layer sleeps when idle, so it is chosen unless the user picked a layer.
# It cannot run two parallel launches at once (it aborts the process), hence the
# lock below around every launch, which makes the kernels safe to call from threads.
if "NUMBA_THREADING_LAYER" not in os.environ:
    # Numba's stubs do not list its config attributes.
    numba.config.THREADING_LAYER = "workqueue"  # type: ignore[attr-defined]
_LAUNCH_LOCK = threading.Lock()

# NumPy's error model: a float division by zero gives inf or nan, as in NumPy,
# instead of raising ZeroDivisionError. The check Python's model puts in front of
# every division keeps LLVM from vectorising the loop around it: Adam's update
# (one division per entry) ran 3.6x faster with this model (401,920 float32
# entries, one thread: 889 -> 249 us). No kernel here divides by zero on purpose.
_JIT_OPTIONS: dict[str, Any] = {"cache": True, "error_model": "numpy"}


def parallel_kernel(fn: Kernel) -> Kernel:
    """Compile ``fn`` lazily with ``njit(cache=True, parallel=True)`` and NumPy's
    error model.

    The returned function takes the lock around each call; the Numba dispatcher is
    available as ``.jitted`` (its ``signatures`` list what has been compiled).
    """
    jitted = numba.njit(parallel=True, **_JIT_OPTIONS)(fn)

    @functools.wraps(fn)
    def launch(*args: Any) -> Any:
        with _LAUNCH_LOCK:
            return jitted(*args)

    launch.jitted = jitted  # type: ignore[attr-defined]
    # Called with fn's positional arguments (kernels take no keywords), launch
    # returns what fn returns: to a type checker it is fn.
    return cast(Kernel, launch)


def serial_kernel(fn: Kernel, *, fma: bool = False) -> Kernel:
    """Compile ``fn`` lazily with ``njit(cache=True, nogil=True)`` and NumPy's error
    model: one thread. ``fma=True`` lets LLVM fuse a multiply and an add into one
    instruction (``fastmath={"contract"}``: one rounding instead of two, nothing
    reordered), for kernels that are sums of products of constants (the Winograd
    transforms).

    For every convolution kernel: the drivers run them on each thread of a batch
    split (:mod:`tinynet.kernels.batch_split`), and ``nogil`` lets those threads
    run at once. A parallel launch cost ~30-47 us on an AMD VM and ~150 us on an
    Intel KVM machine (workqueue layer, empty loop), a serial call 0.5 us. The
    dispatcher is ``.jitted``, as for :func:`parallel_kernel`.
    """
    options = {**_JIT_OPTIONS, "fastmath": {"contract"}} if fma else _JIT_OPTIONS
    jitted = numba.njit(nogil=True, **options)(fn)

    @functools.wraps(fn)
    def launch(*args: Any) -> Any:
        return jitted(*args)

    launch.jitted = jitted  # type: ignore[attr-defined]
    # Called with fn's positional arguments (kernels take no keywords), launch
    # returns what fn returns: to a type checker it is fn.
    return cast(Kernel, launch)


def _stack_empty_typing(typingctx: Any, like: Any, size: Any) -> Any:
    if not isinstance(size, types.IntegerLiteral):
        return None
    count = size.literal_value
    dtype = like.dtype

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        element = context.get_value_type(dtype)
        return cgutils.alloca_once(builder, element, size=count)  # type: ignore[no-untyped-call]

    pointer = types.CPointer(dtype)  # type: ignore[no-untyped-call]
    return pointer(like, size), codegen


#: ``stack_empty(like, size)``, inside a kernel: a pointer to ``size`` (a
#: compile-time constant, such as a closure's constant) uninitialised elements of
#: the array ``like``'s dtype on the stack, for ``numba.carray``. A fixed-size
#: accumulator there, indexed by loops of constant length, is one LLVM keeps in
#: vector registers; a heap array (``np.empty``) stays in memory, read and written
#: at each update (``winograd_products``, ``batchnorm.relu_mask_products``).
stack_empty: Any = intrinsic(_stack_empty_typing)


def window_geometry(
    size: int, window: int, stride: int, padding: str
) -> tuple[int, int]:
    """Output length and padding before, for one spatial axis (Keras' rule).

    ``"valid"``: windows lie fully inside, ``out = (size - window) // stride + 1``
    (0 or less means the window does not fit). ``"same"``: ``out = ceil(size /
    stride)``, padded by ``max((out - 1) * stride + window - size, 0)`` in total,
    the smaller half before (top/left) and the larger after.

    Returns
    -------
    (out, pad_before)
    """
    if padding == "valid":
        return (size - window) // stride + 1, 0
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + window - size, 0)
        return out, total // 2
    raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")


def window_placement(
    height: int,
    width: int,
    window: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
) -> tuple[int, int, int, int]:
    """``(out_h, out_w, pad_top, pad_left)`` of a window sliding over an image:
    :func:`window_geometry` for both axes, in the order the kernels take them."""
    ho, pt = window_geometry(height, window[0], strides[0], padding)
    wo, pl = window_geometry(width, window[1], strides[1], padding)
    return ho, wo, pt, pl


__all__ = [
    "PADDINGS",
    "parallel_kernel",
    "serial_kernel",
    "stack_empty",
    "window_geometry",
    "window_placement",
]
