"""copy_checked: the one check-then-copy behind set_weights, optimizer state and
loading, and its callers."""

import numpy as np
import pytest
from model_helpers import mlp, spirals

from tinynet.optimizers import Adam
from tinynet.weights import copy_checked


def targets():
    return {"a": np.zeros((2, 3), np.float32), "b": np.ones(4, np.float32)}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda v: v.pop("b"), "missing ['b'], unexpected []"),
        (lambda v: v.update(c=np.zeros(1)), "missing [], unexpected ['c']"),
        (lambda v: v.update(b=np.ones(5)), "entry 'b' has shape (5,), expected (4,)"),
        (lambda v: v.update(b=np.ones(4, int)), "entry 'b' has dtype int64"),
        (lambda v: v.update(b=np.array([1, np.nan, 1, 1])), "'b' contains NaN"),
        (lambda v: v.update(b=np.array([1, 1, -np.inf, 1])), "'b' contains NaN"),
    ],
)
def test_a_bad_entry_is_named_and_nothing_is_copied(change, fragment):
    dest = targets()
    values = {"a": np.full((2, 3), 7.0), "b": np.full(4, 7.0)}
    change(values)
    with pytest.raises(ValueError) as err:
        copy_checked(dest, values, source="here")
    assert str(err.value).startswith("here: ") and fragment in str(err.value)
    assert not dest["a"].any() and (dest["b"] == 1).all()


def test_floats_are_cast_unless_the_same_dtype_is_required():
    dest = targets()
    values = {"a": np.full((2, 3), 0.5), "b": np.full(4, 2.0)}
    copy_checked(dest, values, source="here")
    assert dest["a"].dtype == np.float32 and (dest["a"] == 0.5).all()
    with pytest.raises(ValueError, match="dtype float64, expected float32"):
        copy_checked(dest, values, source="here", same_dtype=True)


def test_set_weights_refuses_non_finite_values_and_keeps_the_model():
    model = mlp(seed=0)
    before = model.get_weights()
    weights = model.get_weights()
    weights["4.W"][1, 1] = np.nan
    with pytest.raises(ValueError, match="'4.W' contains NaN"):
        model.set_weights(weights)
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(value, before[key])


def test_optimizer_state_with_non_finite_moments_is_refused():
    x, y = spirals(10)
    model = mlp(seed=0)
    model.compile(optimizer=Adam())
    model.fit(x, y, epochs=1, verbose=0)
    state = model.optimizer.state_dict()
    good = {k: v.copy() for k, v in state.items()}
    state["v.0.W"][0, 0] = np.inf
    with pytest.raises(ValueError, match=r"Adam: state: entry 'v.0.W' contains NaN"):
        model.optimizer.load_state_dict(state)
    after = model.optimizer.state_dict()
    assert all(np.array_equal(after[k], good[k]) for k in good)
