"""Ensemble: the mean of its members' probabilities, with a reader's interface."""

import numpy as np
import pytest
from model_helpers import mlp, spirals

from tinynet.ensemble import Ensemble
from tinynet.layers.dense import Dense
from tinynet.model import Sequential


def test_predict_is_the_mean_of_the_members_probabilities():
    x, _ = spirals(20)
    members = [mlp(seed=s) for s in (0, 1, 2)]
    expected = np.mean([m.predict(x) for m in members], axis=0)
    probs = Ensemble(members).predict(x, batch_size=7)
    assert probs.dtype == np.float32 and probs.shape == (len(x), 3)
    np.testing.assert_allclose(probs, expected, rtol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_one_member_reads_as_that_member():
    x, _ = spirals(10)
    model = mlp(seed=3)
    np.testing.assert_array_equal(Ensemble([model]).predict(x), model.predict(x))


def test_input_scale_reaches_every_member():
    x = np.random.default_rng(0).integers(0, 255, (12, 2)).astype(np.uint8)
    members = [mlp(seed=s) for s in (0, 1)]
    scaled = Ensemble(members).predict(x, input_scale=1 / 255)
    by_hand = Ensemble(members).predict(x / np.float32(255))
    np.testing.assert_allclose(scaled, by_hand, rtol=1e-6)


def test_shapes_and_metadata_come_from_the_members():
    a, b = mlp(seed=0), mlp(seed=1)
    a.metadata["command"] = "train a"
    ensemble = Ensemble([a, b], name="pair")
    assert ensemble.input_shape == (2,) and ensemble.output_shape == (3,)
    assert len(ensemble) == 2 and ensemble.name == "pair"
    assert ensemble.metadata["members"][0]["command"] == "train a"
    assert "pair" in repr(ensemble)


def test_members_that_read_different_shapes_are_refused():
    other = Sequential([Dense(3, activation="softmax")], input_shape=(4,))
    with pytest.raises(ValueError, match=r"Ensemble: model 1 reads \(4,\)"):
        Ensemble([mlp(), other])
    with pytest.raises(ValueError, match="at least one model"):
        Ensemble([])
