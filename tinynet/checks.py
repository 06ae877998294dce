"""Checks of the numbers users pass to constructors (layers, optimizers, schedules).

Each returns the value as a plain Python number or raises with one line that names
the owner and the argument: ``TypeError`` for the wrong kind of value (``True`` is
not a number here), ``ValueError`` for a number out of range. ``is_real`` and
``is_integer`` are the bare tests, for checks that raise their own errors.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, TypeGuard


def is_real(value: object) -> TypeGuard[float]:
    """Whether ``value`` is a real number other than a bool (NumPy scalars too).

    To a type checker it is then a float: a ``numbers.Real`` compares with floats
    and converts with ``float()``. (A parameter annotated ``float`` that is tested
    with ``isinstance(value, numbers.Real)`` instead looks unreachable to mypy.)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an integer other than a bool (NumPy integers too)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def real_number(owner: str, name: str, value: Any) -> float:
    """``value`` as a finite float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{owner}: {name} must be finite, got {number!r}")
    return number


def count(owner: str, name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def flag(owner: str, name: str, value: Any) -> bool:
    """``value`` if it is True or False (1 and 0 are refused: they hide mistakes)."""
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return value


__all__ = ["count", "flag", "is_integer", "is_real", "real_number"]
