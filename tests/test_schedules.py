"""Learning-rate schedules against their closed forms, plus validation and configs."""

import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.schedules import (
    CosineDecay,
    ExponentialDecay,
    StepDecay,
    schedule_from_config,
    schedule_to_config,
)


def test_step_decay_values():
    s = StepDecay(0.1, step_size=3, gamma=0.5)
    assert s.per == "epoch"
    expected = {0: 0.1, 2: 0.1, 3: 0.05, 5: 0.05, 6: 0.025, 10: 0.1 * 0.5**3}
    for t, lr in expected.items():
        assert s(t) == pytest.approx(lr, rel=1e-15)


def test_exponential_decay_continuous_and_staircase():
    smooth = ExponentialDecay(0.2, decay_rate=0.9, decay_steps=10)
    stairs = ExponentialDecay(0.2, decay_rate=0.9, decay_steps=10, staircase=True)
    assert smooth.per == "step"
    for t in (0, 1, 9, 10, 15, 37):
        assert smooth(t) == pytest.approx(0.2 * 0.9 ** (t / 10), rel=1e-15)
        assert stairs(t) == pytest.approx(0.2 * 0.9 ** (t // 10), rel=1e-15)
    assert stairs(9) == stairs(0) and stairs(10) < stairs(9)


def test_cosine_decay_without_warmup():
    s = CosineDecay(0.1, decay_steps=100, alpha=0.2)
    assert s(0) == pytest.approx(0.1, rel=1e-15)
    assert s(50) == pytest.approx(0.1 * (0.8 * 0.5 + 0.2), rel=1e-15)
    assert s(25) == pytest.approx(
        0.1 * (0.8 * 0.5 * (1 + math.cos(math.pi / 4)) + 0.2), rel=1e-15
    )
    assert s(100) == pytest.approx(0.02, rel=1e-15)
    assert s(1000) == pytest.approx(0.02, rel=1e-15)  # stays at alpha * initial


def test_cosine_decay_warmup_is_linear_then_cosine():
    s = CosineDecay(0.1, decay_steps=20, warmup_steps=10, warmup_from=0.01)
    assert s(0) == pytest.approx(0.01, rel=1e-15)
    assert s(5) == pytest.approx(0.055, rel=1e-14)
    assert s(9) == pytest.approx(0.01 + 0.09 * 0.9, rel=1e-14)
    assert s(10) == pytest.approx(0.1, rel=1e-15)  # warm-up reaches the peak
    assert s(20) == pytest.approx(0.05, rel=1e-14)  # halfway through the decay
    assert s(30) == pytest.approx(0.0, abs=1e-18)
    assert s(31) == pytest.approx(0.0, abs=1e-18)


@settings(max_examples=25, deadline=None)
@given(
    initial=st.floats(1e-5, 1.0),
    decay_steps=st.integers(1, 500),
    warmup_steps=st.integers(0, 50),
    alpha=st.floats(0.0, 1.0),
)
def test_cosine_decay_bounded_and_monotone_after_warmup(
    initial, decay_steps, warmup_steps, alpha
):
    s = CosineDecay(initial, decay_steps, alpha=alpha, warmup_steps=warmup_steps)
    ts = np.arange(warmup_steps, warmup_steps + decay_steps + 5)
    values = np.array([s(int(t)) for t in ts])
    assert np.all(np.diff(values) <= 1e-15 * initial)
    assert values.max() <= initial * (1 + 1e-12)
    assert values.min() >= alpha * initial * (1 - 1e-12)
    if warmup_steps:
        ramp = np.array([s(t) for t in range(warmup_steps + 1)])
        assert np.all(np.diff(ramp) >= 0)


def test_numpy_integers_accepted_and_bad_t_refused():
    s = StepDecay(1.0, step_size=2)
    assert s(np.int64(4)) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="-1"):
        s(-1)
    with pytest.raises(TypeError, match="1.5"):
        s(1.5)
    with pytest.raises(TypeError):
        s(True)


@pytest.mark.parametrize(
    ("make", "error", "text"),
    [
        (lambda: StepDecay(-0.1, 2), ValueError, "-0.1"),
        (lambda: StepDecay(0.1, 0), ValueError, "step_size"),
        (lambda: StepDecay(0.1, 2.5), TypeError, "2.5"),
        (lambda: StepDecay(0.1, 2, gamma=0.0), ValueError, "gamma"),
        (lambda: StepDecay(0.1, 2, per="batch"), ValueError, "'batch'"),
        (lambda: ExponentialDecay(0.1, -0.5, 10), ValueError, "-0.5"),
        (lambda: ExponentialDecay(0.1, 0.5, 0), ValueError, "decay_steps"),
        (lambda: ExponentialDecay(0.1, 0.5, 10, staircase=1), TypeError, "staircase"),
        (lambda: ExponentialDecay(float("nan"), 0.5, 10), ValueError, "nan"),
        (lambda: CosineDecay(0.1, 10, alpha=1.5), ValueError, "1.5"),
        (lambda: CosineDecay(0.1, 10, warmup_steps=-1), ValueError, "-1"),
        (lambda: CosineDecay(0.1, 10, warmup_from=-0.2), ValueError, "-0.2"),
        (lambda: CosineDecay("0.1", 10), TypeError, "'0.1'"),
    ],
)
def test_invalid_arguments(make, error, text):
    with pytest.raises(error, match=re.escape(text)):
        make()


@pytest.mark.parametrize(
    "schedule",
    [
        StepDecay(0.1, 3, gamma=0.3, per="step"),
        ExponentialDecay(0.1, 0.96, 100, staircase=True, per="epoch"),
        CosineDecay(0.1, 1000, alpha=0.1, warmup_steps=50, warmup_from=0.001),
    ],
)
def test_config_round_trip_through_json(schedule):
    spec = json.loads(json.dumps(schedule_to_config(schedule)))
    rebuilt = schedule_from_config(spec)
    assert type(rebuilt) is type(schedule)
    assert rebuilt.get_config() == schedule.get_config()
    assert [rebuilt(t) for t in range(0, 200, 7)] == [
        schedule(t) for t in range(0, 200, 7)
    ]


def test_from_config_refuses_unknown_things():
    with pytest.raises(ValueError, match="PolyDecay"):
        schedule_from_config({"class_name": "PolyDecay", "config": {}})
    with pytest.raises(ValueError, match="power"):
        schedule_from_config(
            {
                "class_name": "StepDecay",
                "config": {"initial_learning_rate": 0.1, "step_size": 2, "power": 2},
            }
        )
    with pytest.raises(ValueError, match="class_name"):
        schedule_from_config({"config": {}})
