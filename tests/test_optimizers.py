"""Optimizers against hand-derived references, convergence, state and validation.

The references below are written element by element in float64 with the textbook
(Keras 3) formulas, independently of the vectorised in-place implementation.
"""

import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet import optimizers
from tinynet.optimizers import (
    SGD,
    Adam,
    AdamW,
    CosineDecay,
    ExponentialDecay,
    RMSprop,
    StepDecay,
    clip_by_global_norm,
    global_norm,
)

SHAPES = {"0.W": (2, 3), "0.b": (3,)}


def make_problem(seed=0, steps=5, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
    grads = [
        {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
        for _ in range(steps)
    ]
    return params, grads


def run(opt, params, grads):
    params = {k: v.copy() for k, v in params.items()}
    for g in grads:
        opt.step(params, g)
    return params


def reference(update, params, grads):
    """Apply ``update(i, t, p, g, state) -> p`` to every scalar, t counting from 1."""
    out = {}
    for key, p0 in params.items():
        flat = [float(v) for v in p0.ravel()]
        states = [{} for _ in flat]
        for t, g in enumerate(grads, start=1):
            gflat = g[key].ravel()
            for i in range(len(flat)):
                flat[i] = update(t, flat[i], float(gflat[i]), states[i])
        out[key] = np.array(flat).reshape(p0.shape)
    return out


def ref_sgd(lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    def update(t, p, g, s):
        p = p - p * weight_decay * lr  # decoupled, as in Keras 3
        if momentum == 0:
            return p - lr * g
        s["v"] = momentum * s.get("v", 0.0) - lr * g
        return p + (momentum * s["v"] - lr * g if nesterov else s["v"])

    return update


def ref_adam(lr, b1, b2, eps, weight_decay=0.0):
    def update(t, p, g, s):
        p = p - p * weight_decay * lr
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        return p - alpha * s["m"] / (math.sqrt(s["v"]) + eps)

    return update


def ref_rmsprop(lr, rho, momentum, eps, centered, weight_decay=0.0):
    def update(t, p, g, s):
        p = p - p * weight_decay * lr
        s["ms"] = rho * s.get("ms", 0.0) + (1 - rho) * g * g
        denom = s["ms"] + eps
        if centered:
            s["mg"] = rho * s.get("mg", 0.0) + (1 - rho) * g
            denom -= s["mg"] ** 2
        inc = lr * g / math.sqrt(denom)
        if momentum == 0:
            return p - inc
        s["mom"] = momentum * s.get("mom", 0.0) + inc
        return p - s["mom"]

    return update


CASES = [
    (lambda: SGD(0.1), ref_sgd(0.1)),
    (lambda: SGD(0.1, momentum=0.9), ref_sgd(0.1, 0.9)),
    (lambda: SGD(0.1, momentum=0.8, nesterov=True), ref_sgd(0.1, 0.8, True)),
    (lambda: SGD(0.05, weight_decay=0.3), ref_sgd(0.05, weight_decay=0.3)),
    (
        lambda: SGD(0.05, momentum=0.7, nesterov=True, weight_decay=0.1),
        ref_sgd(0.05, 0.7, True, 0.1),
    ),
    (lambda: Adam(0.01), ref_adam(0.01, 0.9, 0.999, 1e-7)),
    (lambda: Adam(0.1, 0.5, 0.8, 1e-3), ref_adam(0.1, 0.5, 0.8, 1e-3)),
    (lambda: AdamW(0.01, 0.1), ref_adam(0.01, 0.9, 0.999, 1e-7, 0.1)),
    # Keras 3: every optimizer decays decoupled, p -= lr * wd * p before the update.
    (lambda: Adam(0.01, weight_decay=0.1), ref_adam(0.01, 0.9, 0.999, 1e-7, 0.1)),
    (
        lambda: RMSprop(0.01, momentum=0.5, weight_decay=0.2),
        ref_rmsprop(0.01, 0.9, 0.5, 1e-7, False, 0.2),
    ),
    (lambda: RMSprop(0.01), ref_rmsprop(0.01, 0.9, 0.0, 1e-7, False)),
    (
        lambda: RMSprop(0.01, 0.8, momentum=0.5, epsilon=1e-4),
        ref_rmsprop(0.01, 0.8, 0.5, 1e-4, False),
    ),
    (
        lambda: RMSprop(0.02, 0.7, epsilon=1e-3, centered=True),
        ref_rmsprop(0.02, 0.7, 0.0, 1e-3, True),
    ),
    (
        lambda: RMSprop(0.02, 0.7, momentum=0.9, epsilon=1e-3, centered=True),
        ref_rmsprop(0.02, 0.7, 0.9, 1e-3, True),
    ),
]
IDS = [repr(make()) for make, _ in CASES]


@pytest.mark.parametrize(("make", "update"), CASES, ids=IDS)
def test_first_steps_match_reference(make, update):
    params, grads = make_problem(steps=5)
    got = run(make(), params, grads)
    want = reference(update, params, grads)
    for key in SHAPES:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=1e-14)


def test_closed_forms_for_first_steps():
    """Two facts derivable on paper, independent of the references above."""
    g = np.array([0.5, -2.0, 1e-3])
    # SGD with momentum and a constant gradient: p2 = p0 - lr * g * (2 + mu).
    p = np.zeros(3)
    opt = SGD(0.1, momentum=0.9)
    opt.step({"p": p}, {"p": g})
    opt.step({"p": p}, {"p": g})
    np.testing.assert_allclose(p, -0.1 * g * 2.9, rtol=1e-14)
    # Adam's first step: m / sqrt(v) = sign(g) after bias correction, so
    # p1 = p0 - lr * sqrt(1 - b2) * g / (sqrt(1 - b2) * |g| + eps).
    p = np.zeros(3)
    Adam(0.01, epsilon=1e-4).step({"p": p}, {"p": g})
    c = math.sqrt(1 - 0.999)
    np.testing.assert_allclose(p, -0.01 * c * g / (c * np.abs(g) + 1e-4), rtol=1e-13)
    assert abs(p[0] + 0.01) < 1e-4 and abs(p[1] - 0.01) < 1e-4  # about lr * sign(g)


@settings(max_examples=20, deadline=None)
@given(
    lr=st.floats(1e-4, 1.0),
    b1=st.floats(0.0, 0.99),
    b2=st.floats(0.0, 0.9999),
    eps=st.floats(1e-8, 1e-2),
    seed=st.integers(0, 2**16),
)
def test_adam_matches_reference_for_random_hyperparameters(lr, b1, b2, eps, seed):
    params, grads = make_problem(seed, steps=4)
    got = run(Adam(lr, b1, b2, eps), params, grads)
    want = reference(ref_adam(lr, b1, b2, eps), params, grads)
    for key in SHAPES:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("make", "update"), CASES, ids=IDS)
def test_float32_stays_float32_and_close_to_float64(make, update):
    p64, g64 = make_problem(steps=5)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    g32 = [{k: v.astype(np.float32) for k, v in g.items()} for g in g64]
    opt = make()
    got32 = run(opt, p32, g32)
    got64 = run(make(), p64, g64)
    for key in SHAPES:
        assert got32[key].dtype == np.float32
        np.testing.assert_allclose(got32[key], got64[key], rtol=1e-5, atol=1e-6)
    for name, value in opt.state_dict().items():
        assert value.dtype == (np.int64 if "." not in name else np.float32), name


@pytest.mark.parametrize(("make", "update"), CASES, ids=IDS)
def test_updates_in_place_and_leaves_grads_alone(make, update):
    params, grads = make_problem(steps=2)
    before = {k: v.copy() for k, v in params.items()}
    ids = {k: id(v) for k, v in params.items()}
    grad_copies = [{k: v.copy() for k, v in g.items()} for g in grads]
    opt = make()
    opt.clipnorm = 0.1  # exercise the clipped path too
    for g in grads:
        opt.step(params, g)
    assert {k: id(v) for k, v in params.items()} == ids
    assert all(not np.array_equal(params[k], before[k]) for k in SHAPES)
    for g, copy in zip(grads, grad_copies, strict=True):
        for k in SHAPES:
            np.testing.assert_array_equal(g[k], copy[k])
    assert opt.iterations == 2


# ------------------------------------------------------------------ convergence
QUAD_D = np.array([1.0, 3.0, 10.0])
QUAD_B = np.array([1.0, -2.0, 0.5])


@pytest.mark.parametrize(
    ("opt", "steps", "l2"),
    [
        (SGD(0.1), 300, 0.0),
        (SGD(0.05, momentum=0.9), 400, 0.0),
        (SGD(0.05, momentum=0.9, nesterov=True), 300, 0.0),
        (SGD(0.1, weight_decay=0.5), 200, 0.5),
        (Adam(0.05), 1000, 0.0),
        # RMSprop takes steps of about lr whatever the gradient, so it needs a
        # decaying rate to settle.
        (RMSprop(ExponentialDecay(0.02, 0.5, 100)), 1000, 0.0),
        (RMSprop(CosineDecay(0.02, 1000), momentum=0.5, centered=True), 1000, 0.0),
    ],
    ids=repr,
)
def test_minimises_convex_quadratic(opt, steps, l2):
    """f(x) = sum(d x^2 / 2 - b x), plus l2/2 |x|^2 through SGD's weight decay."""
    x = np.zeros(3)
    for _ in range(steps):
        opt.step({"x": x}, {"x": QUAD_D * x - QUAD_B})
    np.testing.assert_allclose(x, QUAD_B / (QUAD_D + l2), atol=1e-6)


def test_adam_minimises_rosenbrock():
    x = np.array([-1.2, 1.0])
    opt = Adam(0.02)
    for _ in range(4000):
        a, b = x
        grad = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
        opt.step({"x": x}, {"x": grad})
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-4)


# --------------------------------------------------------- learning rate, clip
def test_step_schedule_drives_each_update():
    sched = ExponentialDecay(0.1, decay_rate=0.5, decay_steps=2)
    opt = SGD(sched)
    p = np.zeros(1)
    for t in range(5):
        assert opt.lr == pytest.approx(0.1 * 0.5 ** (t / 2))
        before = p.copy()
        opt.step({"p": p}, {"p": np.ones(1)})
        np.testing.assert_allclose(before - p, [sched(t)], rtol=1e-14)


def test_epoch_schedule_follows_set_epoch():
    opt = SGD(StepDecay(0.1, step_size=2, gamma=0.5))
    p = np.zeros(1)
    opt.set_epoch(0)
    opt.step({"p": p}, {"p": np.ones(1)})
    opt.step({"p": p}, {"p": np.ones(1)})
    assert opt.lr == pytest.approx(0.1)  # steps do not move an epoch schedule
    opt.set_epoch(3)
    assert opt.lr == pytest.approx(0.05)
    opt.step({"p": p}, {"p": np.ones(1)})
    np.testing.assert_allclose(p, [-0.25], rtol=1e-14)
    with pytest.raises(ValueError, match="-1"):
        opt.set_epoch(-1)


def test_float_learning_rate_is_settable():
    opt = SGD(StepDecay(0.1, 1))
    opt.learning_rate = 0.5
    p = np.zeros(2)
    opt.step({"p": p}, {"p": np.ones(2)})
    np.testing.assert_allclose(p, [-0.5, -0.5])
    assert optimizers.to_config(opt)["config"]["learning_rate"] == 0.5
    with pytest.raises(ValueError, match="-0.5"):
        opt.learning_rate = -0.5
    with pytest.raises(TypeError, match="learning_rate"):
        opt.learning_rate = "fast"


def test_clipnorm_scales_by_global_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([4.0])}  # global norm 5
    assert global_norm(grads) == pytest.approx(5.0)
    for clipnorm, factor in [(1.0, 0.2), (2.5, 0.5), (10.0, 1.0)]:
        params = {"a": np.zeros(2), "b": np.zeros(1)}
        SGD(1.0, clipnorm=clipnorm).step(params, grads)
        for k in grads:
            np.testing.assert_allclose(params[k], -factor * grads[k], rtol=1e-14)
    np.testing.assert_array_equal(grads["b"], [4.0])


def test_clip_by_global_norm_helper_scales_in_place():
    grads = {"a": np.array([3.0, 0.0], np.float32), "b": np.array([4.0], np.float32)}
    assert clip_by_global_norm(grads, 1.0) == pytest.approx(5.0)
    assert global_norm(grads) == pytest.approx(1.0, rel=1e-6)
    assert grads["a"].dtype == np.float32
    assert clip_by_global_norm(grads, 2.0) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(grads["b"], [0.8], rtol=1e-6)  # unchanged
    # float32 squares overflow at 1.8e19 even though the norm is representable
    assert global_norm({"a": np.array([1e20], np.float32)}) == pytest.approx(1e20)


# --------------------------------------------------------------- state and resume
STATEFUL = [
    lambda: SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda: Adam(CosineDecay(0.01, 20, warmup_steps=3), clipnorm=1.0),
    lambda: AdamW(0.01, 0.05),
    lambda: RMSprop(ExponentialDecay(0.01, 0.9, 2), momentum=0.5, centered=True),
]


@pytest.mark.parametrize("make", STATEFUL, ids=lambda m: type(m()).__name__)
def test_state_dict_round_trip_resumes_bit_identically(make, tmp_path):
    params, grads = make_problem(seed=3, steps=8, dtype=np.float32)
    a = make()
    pa = {k: v.copy() for k, v in params.items()}
    for g in grads[:4]:
        a.step(pa, g)
    a.set_epoch(2)
    path = tmp_path / "opt.npz"
    np.savez(path, **a.state_dict())
    with np.load(path, allow_pickle=False) as f:
        state = dict(f)
    spec = json.loads(json.dumps(optimizers.to_config(a)))
    b = optimizers.from_config(spec)
    b.load_state_dict(state)
    assert (b.iterations, b.epoch) == (4, 2)
    pb = {k: v.copy() for k, v in pa.items()}
    fresh = make()
    pf = {k: v.copy() for k, v in pa.items()}
    for g in grads[4:]:
        a.step(pa, g)
        b.step(pb, g)
        fresh.step(pf, g)
    for k in SHAPES:
        np.testing.assert_array_equal(pa[k], pb[k])
        assert not np.array_equal(pa[k], pf[k])  # the state really mattered


def test_state_dict_is_a_copy_with_expected_keys():
    params, grads = make_problem(steps=1)
    opt = Adam()
    opt.step(params, grads[0])
    state = opt.state_dict()
    assert set(state) == {"iterations", "epoch", "m.0.W", "v.0.W", "m.0.b", "v.0.b"}
    assert state["iterations"].shape == () and state["iterations"].dtype == np.int64
    state["m.0.W"][...] = 123.0
    assert not np.any(opt.state_dict()["m.0.W"] == 123.0)


def _adam_state():
    params, grads = make_problem(steps=2)
    opt = Adam()
    run(opt, params, grads)
    return opt, opt.state_dict()


@pytest.mark.parametrize(
    ("corrupt", "text"),
    [
        (lambda s: s.pop("iterations"), "'iterations'"),
        (lambda s: s.pop("v.0.b"), "'v.0.b'"),
        (lambda s: s.update({"w.0.W": np.zeros((2, 3))}), "'w.0.W'"),
        (lambda s: s.update({"m.0.W": np.zeros((3, 2))}), "m.0.W"),
        (lambda s: s.update({"m.0.b": np.zeros(3, np.float32)}), "m.0.b"),
        (lambda s: s.update({"m.0.b": np.zeros(3, np.int64)}), "m.0.b"),
        (lambda s: s.update({"epoch": np.array(1, np.int32)}), "'epoch'"),
        (lambda s: s.update({"epoch": np.array(-1, np.int64)}), "'epoch'"),
        (lambda s: s.update({"m.1.W": np.zeros(2), "v.1.W": np.zeros(2)}), "1.W"),
    ],
)
def test_load_state_dict_is_strict_and_atomic(corrupt, text):
    opt, state = _adam_state()
    good = opt.state_dict()
    corrupt(state)
    with pytest.raises(ValueError, match=re.escape(text)):
        opt.load_state_dict(state)
    after = opt.state_dict()
    assert all(np.array_equal(after[k], good[k]) for k in good)


def test_loaded_state_fixes_the_parameters_of_an_unbuilt_optimizer():
    _, state = _adam_state()
    fresh = Adam()
    fresh.load_state_dict(state)
    with pytest.raises(ValueError, match=r"missing \['0.b'\]"):
        fresh.step({"0.W": np.zeros((2, 3))}, {"0.W": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="momentum.0.W"):
        SGD(0.1).load_state_dict(
            {
                "iterations": state["iterations"],
                "epoch": state["epoch"],
                "momentum.0.W": np.zeros((2, 3)),
            }
        )


# --------------------------------------------------------------------- checks
def test_step_checks_keys_shapes_and_dtypes():
    params, grads = make_problem(steps=1)
    opt = SGD(0.1)
    opt.step(params, grads[0])
    with pytest.raises(ValueError, match=r"missing \['0.b'\], unexpected \['1.W'\]"):
        opt.step({"0.W": params["0.W"], "1.W": params["0.b"]}, grads[0])
    with pytest.raises(ValueError, match=r"grads\['0.b'\].*\(3,\)"):
        opt.step(params, {**grads[0], "0.b": np.zeros(4)})
    with pytest.raises(ValueError, match=r"grads\['0.W'\].*float64"):
        opt.step(params, {**grads[0], "0.W": grads[0]["0.W"].astype(np.float32)})
    with pytest.raises(TypeError, match="'i'"):
        SGD(0.1).step({"i": np.zeros(3, np.int64)}, {"i": np.zeros(3, np.int64)})


@pytest.mark.parametrize(
    ("make", "error", "text"),
    [
        (lambda: SGD(-0.5), ValueError, "-0.5"),
        (lambda: SGD(float("inf")), ValueError, "inf"),
        (lambda: SGD("0.1"), TypeError, "'0.1'"),
        (lambda: SGD(0.1, momentum=1.0), ValueError, "1.0"),
        (lambda: SGD(0.1, momentum=-0.1), ValueError, "-0.1"),
        (lambda: SGD(0.1, nesterov=True), ValueError, "nesterov"),
        (lambda: SGD(0.1, 0.9, nesterov=1), TypeError, "nesterov"),
        (lambda: SGD(0.1, weight_decay=-0.01), ValueError, "-0.01"),
        (lambda: SGD(0.1, clipnorm=0.0), ValueError, "clipnorm"),
        (lambda: Adam(beta_1=1.0), ValueError, "beta_1"),
        (lambda: Adam(beta_2=-0.5), ValueError, "-0.5"),
        (lambda: Adam(epsilon=0.0), ValueError, "epsilon"),
        (lambda: AdamW(weight_decay=-0.004), ValueError, "-0.004"),
        (lambda: RMSprop(rho=1.5), ValueError, "1.5"),
        (lambda: RMSprop(momentum=1.0), ValueError, "momentum"),
        (lambda: RMSprop(centered="yes"), TypeError, "'yes'"),
    ],
)
def test_invalid_hyperparameters(make, error, text):
    with pytest.raises(error, match=re.escape(text)):
        make()


# ------------------------------------------------------------ lookup and config
def test_get_by_name_or_instance():
    assert type(optimizers.get("ADAM")) is Adam
    assert type(optimizers.get("AdamW")) is AdamW
    assert optimizers.get("sgd", momentum=0.9).momentum == 0.9
    opt = RMSprop()
    assert optimizers.get(opt) is opt
    with pytest.raises(ValueError, match="adagrad.*adam, adamw, rmsprop, sgd"):
        optimizers.get("adagrad")
    with pytest.raises(TypeError):
        optimizers.get(opt, learning_rate=0.1)
    with pytest.raises(TypeError):
        optimizers.get(3)


@pytest.mark.parametrize("make", [m for m, _ in CASES] + STATEFUL)
def test_config_round_trip_through_json(make):
    opt = make()
    rebuilt = optimizers.from_config(json.loads(json.dumps(optimizers.to_config(opt))))
    assert type(rebuilt) is type(opt)
    assert rebuilt.get_config() == opt.get_config()
    assert rebuilt.slots == opt.slots


def test_from_config_refuses_bad_specs():
    with pytest.raises(ValueError, match="Adagrad"):
        optimizers.from_config({"class_name": "Adagrad", "config": {}})
    with pytest.raises(ValueError, match="amsgrad"):
        optimizers.from_config({"class_name": "Adam", "config": {"amsgrad": True}})
    with pytest.raises(ValueError, match="Poly"):
        optimizers.from_config(
            {
                "class_name": "SGD",
                "config": {"learning_rate": {"class_name": "Poly", "config": {}}},
            }
        )

    class MyAdam(Adam):
        pass

    with pytest.raises(TypeError, match="MyAdam"):
        optimizers.to_config(MyAdam())


# ------------------------------------------------------------------- subnormals
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize(
    "make",
    [
        lambda: SGD(0.01, momentum=0.9),
        lambda: RMSprop(1e-3),
        lambda: RMSprop(1e-3, momentum=0.5, centered=True),
    ],
    ids=["sgd-momentum", "rmsprop", "rmsprop-centered-momentum"],
)
def test_decaying_state_reaches_zero_and_is_never_subnormal(make, contiguous, dtype):
    """A dead unit's state is multiplied by its decay every step. Left alone it
    would sink to the smallest subnormal and stay there (decay * x rounds back to x),
    slow on every later step; it must instead become exactly 0."""
    tiny = np.finfo(dtype).tiny
    p = np.ones((4, 1 if contiguous else 2), dtype)[:, 0]
    assert p.flags.c_contiguous == contiguous
    opt = make()
    opt.step({"w": p}, {"w": np.array([0.5, -0.5, 1e-3, 0.0], dtype)})
    zero = {"w": np.zeros(4, dtype)}
    steps = int(np.log(tiny) / np.log(0.9)) + 60  # long past the subnormal range

    def slots() -> list[np.ndarray]:
        return [a for key, a in opt.state_dict().items() if key.endswith(".w")]

    for _ in range(steps):
        opt.step({"w": p}, zero)
        for s in slots():
            assert not np.any((s != 0) & (np.abs(s) < tiny)), s
    assert slots()
    for s in slots():
        np.testing.assert_array_equal(s, 0)
    before = p.copy()
    opt.step({"w": p}, zero)
    np.testing.assert_array_equal(p, before)
