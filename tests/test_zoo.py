"""The zoo: the speedrun model and its training recipe, the CNN's width."""

import math

import numpy as np
import pytest

from tinynet import zoo
from tinynet.layers import Conv2D, MaxPool2D
from tinynet.plan import LayerStep, SoftmaxCrossEntropyStep

RECIPE = zoo.SPEEDRUN_RECIPE


def compiled_speedrun(seed: int = 0):
    model = zoo.MODELS["speedrun"](seed=seed)
    model.compile(RECIPE.make_optimizer(), RECIPE.make_loss())
    return model


def test_speedrun_is_registered_with_its_recipe():
    assert zoo.MODELS["speedrun"] is zoo.mnist_speedrun
    assert zoo.RECIPES["speedrun"] is RECIPE
    assert set(zoo.RECIPES) <= set(zoo.MODELS)


def test_speedrun_maps_images_to_class_probabilities():
    model = zoo.mnist_speedrun(seed=0)
    x = np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32)
    probs = model.predict(x)
    assert probs.shape == (5, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_speedrun_plan_runs_every_convolution_and_pool_in_a_composite_step():
    plan = compiled_speedrun().plan
    alone = [step.layers[0] for step in plan if isinstance(step, LayerStep)]
    assert not [layer for layer in alone if isinstance(layer, Conv2D | MaxPool2D)]
    assert isinstance(plan.loss_step, SoftmaxCrossEntropyStep)


def test_speedrun_seed_fixes_the_weights():
    a, b, c = (zoo.mnist_speedrun(seed=s).get_weights() for s in (1, 1, 2))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_recipe_total_steps_count_the_partial_last_batch():
    steps_per_epoch = math.ceil(RECIPE.train_images / RECIPE.batch_size)
    assert RECIPE.total_steps() == RECIPE.epochs * steps_per_epoch
    assert RECIPE.total_steps(RECIPE.batch_size + 1) == 2 * RECIPE.epochs


def test_recipe_schedule_warms_up_to_the_peak_then_decays_to_zero():
    total = RECIPE.total_steps()
    rates = np.array([RECIPE.learning_rate(t) for t in range(total)])
    warm = RECIPE.warmup_steps
    assert 0 < warm < total // 2
    assert rates[0] == 0.0
    assert np.all(np.diff(rates[: warm + 1]) > 0)
    assert rates[warm] == pytest.approx(RECIPE.peak_learning_rate)
    assert rates.max() == pytest.approx(RECIPE.peak_learning_rate)
    assert np.all(np.diff(rates[warm:]) < 0)
    assert rates[-1] < 1e-3 * RECIPE.peak_learning_rate


def test_recipe_short_run_keeps_half_for_the_decay():
    schedule = RECIPE.schedule(10)
    assert schedule.warmup_steps == 5 and schedule.decay_steps == 5


def test_recipe_optimizer_follows_the_recipe_schedule():
    model = compiled_speedrun()
    rng = np.random.default_rng(0)
    x = rng.random((8, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 8)
    seen = []
    for _ in range(3):
        seen.append(model.optimizer.lr)
        model.train_step(x, y)
    assert seen == [RECIPE.learning_rate(t) for t in range(3)]
    assert model.loss.label_smoothing == RECIPE.label_smoothing


def test_recipe_names_only_a_decay_it_has():
    with pytest.raises(ValueError, match="decay must be 'cosine', got 'linear'"):
        zoo.Recipe(1, 128, 60_000, 1e-2, 47, decay="linear")


def test_cnn_width_multiplies_the_channels_and_names_the_network():
    narrow, wide = zoo.mnist_cnn(seed=0), zoo.mnist_cnn(width=1.5, seed=0)
    convs = [
        [layer for layer in m.layers if isinstance(layer, Conv2D)]
        for m in (narrow, wide)
    ]
    assert [c.params["W"].shape[-1] for c in convs[0]] == [32, 32, 64, 64]
    assert [c.params["W"].shape[-1] for c in convs[1]] == [48, 48, 96, 96]
    assert (narrow.name, wide.name) == ("mnist_cnn", "mnist_cnn_w1.5")
    assert (zoo.cnn_width(narrow), zoo.cnn_width(wide)) == (1.0, 1.5)
    assert sum(v.size for v in wide.parameters().values()) == 344_314  # 48+96 channels
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    assert wide.predict(x).shape == (3, 10)


@pytest.mark.parametrize("width", [0, -1.5, True, "1.5"])
def test_cnn_width_must_be_a_positive_number(width):
    with pytest.raises(ValueError, match="width must be a positive number"):
        zoo.mnist_cnn(width=width)


def test_cnn_width_of_another_network_is_a_clear_error():
    with pytest.raises(ValueError, match="not an mnist_cnn"):
        zoo.cnn_width(zoo.mnist_mlp(seed=0))
