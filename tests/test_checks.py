"""The argument tests layers and losses validate their numbers with."""

from fractions import Fraction

import numpy as np
import pytest

from tinynet.checks import is_integer, is_real


@pytest.mark.parametrize(
    "value", [0, -3, 2.5, np.float32(0.5), np.int64(7), Fraction(1, 3)]
)
def test_is_real_accepts_every_kind_of_real_number(value):
    assert is_real(value)


@pytest.mark.parametrize("value", [True, False, np.bool_(True), "0.5", None, 1j, [0.5]])
def test_is_real_refuses_bools_and_non_numbers(value):
    assert not is_real(value)


@pytest.mark.parametrize("value", [0, -3, np.int8(4), np.uint64(2**63)])
def test_is_integer_accepts_python_and_numpy_integers(value):
    assert is_integer(value)


@pytest.mark.parametrize(
    "value", [True, np.bool_(False), 3.0, np.float64(2), "3", None]
)
def test_is_integer_refuses_bools_floats_and_non_numbers(value):
    assert not is_integer(value)
