"""The thread governor's decisions, driven by made-up call times (no clock), and a
plan whose calls it moves to one thread."""

import copy

import numba
import numpy as np
import pytest

from tinynet import Sequential, zoo
from tinynet.layers import Conv2D, Dense, Flatten, MaxPool2D
from tinynet.plan.governor import ThreadGovernor

KEY = ("train", 128)


def run(governor, seconds_at, calls, key=KEY):
    """Make ``calls`` calls of ``key``, each taking ``seconds_at[width]``; return the
    widths they ran at."""
    widths = []
    for _ in range(calls):
        width = governor.width(key)
        governor.record(key, width, seconds_at[width])
        widths.append(width)
    return widths


def governor(**kwargs):
    options = {
        "warmup": 0,
        "first_trial": 4,
        "max_interval": 32,
        "trial_calls": 2,
        "window": 4,
    }
    return ThreadGovernor(cpus=lambda: 2, **(options | kwargs))


def test_stays_wide_on_a_quiet_machine_trying_one_thread_ever_more_rarely():
    g = governor()
    widths = run(g, {"all": 1.0, "one": 1.7}, 200)
    assert f"{widths.count('one')} of 200 calls on one" in g.describe()
    assert widths[:4] == ["all"] * 4
    # The first trial: its one call is slower than every call of the window.
    assert widths[4:6] == ["one", "all"]
    trials = [i for i in range(1, 200) if widths[i] == "one" != widths[i - 1]]
    gaps = [b - a for a, b in zip(trials, trials[1:], strict=False)]
    assert gaps == sorted(gaps) and gaps[-1] == 32 + 1  # growing, then capped
    assert widths.count("one") == len(trials)


def test_the_defaults_try_one_thread_3_times_in_an_epoch_then_once_in_513_calls():
    """What the governor costs on a quiet machine, where one thread is the slower:
    its trial calls, each ended after one call (the figures in the docstrings)."""
    g = ThreadGovernor(cpus=lambda: 2)
    widths = run(g, {"all": 1.0, "one": 1.7}, 469 + 3 * 513)
    assert widths[:469].count("one") == 3  # an MLP's first epoch at batch 128
    trials = [i for i, width in enumerate(widths) if width == "one"]
    assert [b - a for a, b in zip(trials[2:], trials[3:], strict=False)] == [513] * 3


def test_describe_gives_the_medians_the_last_trial_compared():
    g = governor()
    assert g.describe() == ""
    run(g, {"all": 58e-6, "one": 81e-6}, 4)
    assert g.describe().endswith("all threads now; 0 of 4 calls on one")
    run(g, {"all": 58e-6, "one": 81e-6}, 1)  # the trial: one call, hopeless
    assert g.describe().endswith(
        "1 of 5 calls on one; 1 trial, the last: one 81.0 us, all 58.0 us"
    )
    run(g, {"all": 90e-6, "one": 30e-6}, 40)  # busy: one thread takes over
    assert "one threads now" in g.describe()
    assert "all 90.0 us" in g.describe().split("the last: ")[1]


def test_the_first_calls_of_a_kind_are_not_timed():
    """Warm-up calls (first-touch page faults, threads starting) run wide and say
    nothing about the width: slow as they are, they neither stand for all threads
    in the first trial nor bring it closer."""
    g = governor(warmup=3)
    widths = []
    for call in range(40):
        width = g.width(KEY)
        widths.append(width)
        steady = {"all": 1.0, "one": 1.3}[width]
        g.record(KEY, width, 5.0 if call < 3 else steady)
    assert widths[:7] == ["all"] * 7  # 3 warm-up calls, then first_trial timed
    assert widths[7:9] == ["one", "all"]  # one call: slower than the whole window
    assert widths.count("one") < 5
    assert "all threads now; 2 of 40 calls on one" in g.describe()


def test_without_warmup_slow_first_calls_hand_the_first_trial_to_one_thread():
    """What the warm-up guards against: the same calls, all of them timed."""
    g = governor(warmup=0)
    for call in range(8):
        width = g.width(KEY)
        g.record(KEY, width, 5.0 if call < 3 else {"all": 1.0, "one": 1.3}[width])
    assert "one threads now" in g.describe()


def test_a_trial_runs_its_calls_while_the_other_width_may_still_win():
    g = governor(trial_calls=3)
    widths = run(g, {"all": 1.0, "one": 0.9}, 4 + 3)
    assert widths[4:] == ["one"] * 3
    assert "all threads now" in g.describe()  # 10% faster is below the margin


def test_a_trial_call_slower_than_the_whole_window_ends_the_trial():
    g = governor(trial_calls=3)
    for seconds in (1.0, 1.3, 0.9, 1.1):  # a noisy window at all threads
        g.record(KEY, g.width(KEY), seconds)
    assert g.width(KEY) == "one"
    g.record(KEY, "one", 1.2)  # within the window's spread: the trial goes on
    assert g.width(KEY) == "one"
    g.record(KEY, "one", 1.31)  # slower than every call of the window
    assert g.width(KEY) == "all"


def test_goes_to_one_thread_when_the_machine_gets_busy_and_back_when_quiet():
    g = governor()
    run(g, {"all": 1.0, "one": 1.7}, 100)
    assert "all threads now" in g.describe()
    busy = run(g, {"all": 4.5, "one": 1.8}, 100)
    # The slowdown starts a trial at once: the switch comes within a window.
    assert busy.index("one") <= 4
    assert busy.count("one") >= 85  # but for trials of all threads
    assert "one threads now" in g.describe()
    quiet = run(g, {"all": 1.0, "one": 1.7}, 100)
    assert quiet.index("all") <= 32  # the next trial, at most max_interval away
    assert "all threads now" in g.describe()


def test_on_one_thread_trials_come_at_most_max_interval_on_one_apart():
    """When the other process ends, calls on one thread do not slow down: only a
    trial of all threads finds out, so on one thread they stay frequent."""
    g = governor(max_interval=128, max_interval_on_one=16)
    run(g, {"all": 4.0, "one": 1.0}, 300)  # busy: one thread wins every trial
    assert "one threads now" in g.describe()
    quiet = run(g, {"all": 1.0, "one": 1.7}, 100)
    assert quiet.index("all") <= 16
    assert "all threads now" in g.describe()


def test_one_thread_must_win_by_its_margin_to_take_over():
    assert run(governor(one_margin=0.25), {"all": 1.0, "one": 0.8}, 100)[-1] == "all"
    assert run(governor(one_margin=0.25), {"all": 1.0, "one": 0.7}, 100)[-1] == "one"


def test_all_threads_take_back_over_by_a_smaller_margin():
    g = governor(one_margin=0.25, all_margin=0.05)
    run(g, {"all": 1.0, "one": 0.5}, 50)
    assert run(g, {"all": 0.9, "one": 1.0}, 100)[-1] == "all"


def test_each_kind_of_call_has_its_own_width():
    g = governor()
    run(g, {"all": 1.0, "one": 2.0}, 50, key=("train", 128))
    run(g, {"all": 2.0, "one": 1.0}, 50, key=("forward", 16))
    assert g.width(("train", 128)) == "all"
    assert g.width(("forward", 16)) == "one"
    assert "('forward', 16): one threads now" in g.describe()


def test_a_process_on_one_core_stays_on_one_thread_without_trials():
    g = ThreadGovernor(warmup=0, first_trial=2, max_interval=8, cpus=lambda: 1)
    widths = run(g, {"all": 1.0, "one": 1.0}, 40)
    assert widths[:2] == ["all", "all"] and set(widths[2:]) == {"one"}


def test_not_adaptive_always_runs_wide_and_learns_nothing():
    g = governor()
    g.adaptive = False
    assert set(run(g, {"all": 5.0, "one": 1.0}, 50)) == {"all"}
    assert g.describe() == ""


def test_a_call_that_began_before_the_width_changed_is_ignored():
    g = governor(first_trial=1, trial_calls=1)
    g.record(KEY, g.width(KEY), 1.0)
    g.record(KEY, g.width(KEY), 0.1)  # the trial: one thread is faster
    g.record(KEY, "all", 100.0)  # late report from an old call
    assert g.width(KEY) == "one"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first_trial": 0},
        {"warmup": -1},
        {"first_trial": 9, "max_interval": 8},
        {"window": 0},
        {"growth": 0},
        {"max_interval_on_one": 0},
    ],
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="ThreadGovernor"):
        ThreadGovernor(**kwargs)


def test_a_plan_moved_to_one_thread_gives_bit_identical_gradients():
    """The convolutions keep their batch shares on one thread (the small Dense
    product is below the size at which the BLAS splits its work)."""
    if numba.get_num_threads() < 2:
        pytest.skip("the machine gives Numba a single thread")
    model = Sequential(
        [
            Conv2D(8, 3, activation="relu"),
            MaxPool2D(2),
            Conv2D(8, 3),
            Flatten(),
            Dense(10),
        ],
        input_shape=(12, 12, 3),
        seed=0,
    )
    model.compile(optimizer="sgd", loss="cross_entropy")
    model.plan.governor = ThreadGovernor(warmup=0, first_trial=1, cpus=lambda: 1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    grads = []
    for _ in range(2):  # the first call on all threads, the second on one
        model.plan.loss_and_gradients(x, y)
        grads.append({k: v.copy() for k, v in model.gradients().items()})
    assert "1 of 2 calls on one" in model.plan.governor.describe()
    for key, value in grads[0].items():
        np.testing.assert_array_equal(value, grads[1][key], err_msg=key)


def trained_weights(build, x, y, configure):
    """The weights after two epochs of ``build(seed=0)`` on ``x, y``, its governor
    set up by ``configure``."""
    model = build(seed=0)
    model.compile(optimizer="adam", loss="cross_entropy")
    configure(model.plan.governor)
    model.fit(x, y, epochs=2, batch_size=64, seed=1, verbose=0)
    return model.get_weights()


@pytest.mark.parametrize(
    ("build", "shape"),
    [(zoo.mnist_mlp, (28, 28)), (zoo.mnist_classic_cnn, (28, 28, 1))],
    ids=["mlp", "convnet"],
)
def test_training_gives_the_same_weights_on_one_thread_and_on_all(build, shape):
    """Same seed, same weights, whatever width the governor runs the steps at: the
    MLP's first product, (64, 784) @ (784, 512), is one OpenBLAS rounds differently
    on one thread and on two."""
    if numba.get_num_threads() < 2:
        pytest.skip("the machine gives Numba a single thread")
    rng = np.random.default_rng(0)
    x = rng.random((150, *shape), dtype=np.float32)  # 3 batches, the last of 22
    y = rng.integers(0, 10, len(x))

    def not_adaptive(governor):
        governor.adaptive = False

    runs = {
        "one": trained_weights(build, x, y, lambda g: g.force("one")),
        "all": trained_weights(build, x, y, lambda g: g.force("all")),
        "not adaptive": trained_weights(build, x, y, not_adaptive),
    }
    for name, weights in runs.items():
        for key, value in weights.items():
            np.testing.assert_array_equal(value, runs["one"][key], err_msg=name + key)


def test_force_pins_the_width_and_learns_nothing():
    g = governor()
    g.force("one")
    assert set(run(g, {"all": 1.0, "one": 5.0}, 20)) == {"one"}
    assert g.describe() == ""
    g.force(None)
    assert g.width(KEY) == "all"
    with pytest.raises(ValueError, match="force"):
        g.force("two")  # type: ignore[arg-type]


def test_a_model_with_a_governed_plan_can_be_deep_copied():
    model = zoo.mnist_mlp(seed=0)
    model.compile("adam", "cross_entropy")
    x = np.random.default_rng(0).random((16, 28, 28), dtype=np.float32)
    model.train_step(x, np.arange(16) % 10)
    twin = copy.deepcopy(model)
    np.testing.assert_array_equal(twin.predict(x), model.predict(x))
    twin.train_step(x, np.arange(16) % 10)  # its own lock works
