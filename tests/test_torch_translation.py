"""The PyTorch translation the benchmarks use (``benchmarks/_torch_models.py``)
computes what the tinynet model computes: with the weights transferred (kernels
transposed to PyTorch's layout, the Dense after a Flatten reordered from NHWC to
NCHW flattening), outputs agree in inference and training mode, and so does the
gradient of the mean cross-entropy with respect to every weight. Skipped when
PyTorch is not installed: ``pip install -e ".[torch]"``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from bench_helpers import load_benchmark

import tinynet as tn
from tinynet import zoo
from tinynet.gradcheck import rel_error
from tinynet.optimizers import SGD

torch = pytest.importorskip(
    "torch", reason='PyTorch not installed: pip install -e ".[torch]"'
)


tm = load_benchmark("_torch_models")

TOLERANCE = {"float32": 1e-5, "float64": 1e-10}


def odd_model(dtype: str) -> tn.Sequential:
    """Every layer kind and option the translation supports, in one small model."""
    return tn.Sequential(
        [
            tn.Conv2D(4, 3, padding="same", activation="tanh"),
            tn.AvgPool2D(2),
            tn.Conv2D(6, (3, 2), strides=(2, 1), use_bias=False),
            tn.BatchNorm(momentum=0.8, epsilon=1e-4),
            tn.LeakyReLU(0.1),
            tn.MaxPool2D(2, strides=1),
            tn.Flatten(),
            tn.Dense(7, activation="sigmoid"),
            tn.Dense(5, use_bias=False),
            tn.BatchNorm(),
            tn.ReLU(),
            tn.Dense(3),
            tn.Softmax(),
        ],
        input_shape=(12, 10, 2),
        seed=3,
        dtype=dtype,
    )


MODELS = {
    "mlp": lambda dtype: zoo.mnist_mlp(seed=1, dtype=dtype),
    "classic_cnn": lambda dtype: zoo.mnist_classic_cnn(seed=1, dtype=dtype),
    "cnn": lambda dtype: zoo.mnist_cnn(seed=1, dtype=dtype),
    "odd": odd_model,
}


def randomise_batch_norms(model: tn.Sequential, seed: int = 0) -> None:
    """Give every BatchNorm gamma, beta and moving statistics away from 1 and 0, so
    a channel order mix-up shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tn.BatchNorm):
            for store in (layer.params, layer.buffers):
                for key, value in store.items():
                    low = 0.5 if key in ("gamma", "moving_var") else -0.5
                    store[key] = rng.uniform(low, low + 1, value.shape).astype(
                        value.dtype
                    )


def batch(model: tn.Sequential, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.random((n, *model.input_shape)).astype(model.dtype)
    return x, rng.integers(0, model.layers[-1].output_shape[-1], n)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_inference_outputs_match(name: str, dtype: str) -> None:
    model = MODELS[name](dtype)
    randomise_batch_norms(model)
    net = tm.to_torch(model).eval()
    x, _ = batch(model)
    with torch.no_grad():
        got = net(torch.from_numpy(tm.nchw(x))).numpy()
    assert got.dtype == model.dtype
    assert rel_error(got, model.predict(x), per="array") <= TOLERANCE[dtype]


@pytest.mark.parametrize("name", ["cnn", "odd"])
def test_training_outputs_and_gradients_match(name: str) -> None:
    """Training mode (BatchNorm on batch statistics), float64, no dropout."""
    model = MODELS[name]("float64")
    for layer in model.layers:
        if isinstance(layer, tn.Dropout):
            layer.rate = 0.0
    randomise_batch_norms(model)
    net = tm.to_torch(model).train()
    x, y = batch(model, n=8)

    logits_net, had_softmax = tm.logits_model(net)
    assert had_softmax
    logits = logits_net(torch.from_numpy(tm.nchw(x)))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
    loss.backward()
    model.compile(optimizer=SGD(learning_rate=0.0), loss="cross_entropy")
    loss_t, _ = model.train_step(x, y)

    assert rel_error(loss_t, loss.item(), per="array") <= 1e-12
    # The gradients in PyTorch's layout: the same transfer, applied to the grads.
    grads_model = copy.deepcopy(model)
    for layer in grads_model.layers:
        layer.params = {k: layer.grads[k] for k in layer.params}
    expected = tm.torch_weights(grads_model)
    got = {k: p.grad.numpy() for k, p in net.named_parameters()}
    assert set(got) == {k for k in expected if not k.endswith(("_mean", "_var"))}
    for key, grad in got.items():
        assert rel_error(grad, expected[key], per="array") <= 1e-9, key


@pytest.mark.parametrize("name", sorted(MODELS))
def test_parameter_counts_match(name: str) -> None:
    model = MODELS[name]("float32")
    net = tm.build_torch(tm.torch_spec(model))
    assert sum(p.numel() for p in net.parameters()) == model.count_params()


def test_spec_is_plain_json() -> None:
    import json

    spec = tm.torch_spec(odd_model("float32"))
    assert json.loads(json.dumps(spec)) == spec


def test_keras_style_initialisation() -> None:
    """Glorot-uniform kernels (bound sqrt(6 / (fan_in + fan_out))), zero biases."""
    torch.manual_seed(0)
    net = tm.build_torch(tm.torch_spec(zoo.mnist_classic_cnn()))
    conv, dense = net[0], net[-2]
    for module, fan_in, fan_out in ((conv, 9, 32 * 9), (dense, 1600, 10)):
        bound = np.sqrt(6 / (fan_in + fan_out))
        w = module.weight.detach().numpy()
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.9 * bound  # uniform over the whole range
        assert not module.bias.detach().numpy().any()


def test_batch_norm_momentum_follows_pytorch_convention() -> None:
    spec = tm.torch_spec(zoo.mnist_cnn())
    norms = [entry for entry in spec if entry["kind"].startswith("batch_norm")]
    assert [entry["kind"] for entry in norms] == ["batch_norm2d"] * 4 + ["batch_norm1d"]
    assert all(entry["momentum"] == pytest.approx(0.1) for entry in norms)
    assert all(entry["eps"] == pytest.approx(1e-3) for entry in norms)


@pytest.mark.parametrize(
    "layers, message",
    [
        ([tn.MaxPool2D(2, padding="same")], "only 'valid' pooling"),
        ([tn.Conv2D(2, 3, strides=2, padding="same")], "needs strides"),
        ([tn.Conv2D(2, 3, activation="softmax")], "softmax over a map"),
        ([tn.Flatten(), tn.BatchNorm()], "flattened map"),
        ([tn.GlobalAvgPool2D()], "no translation"),
    ],
)
def test_untranslatable_layers_are_refused_by_name(layers, message) -> None:
    model = tn.Sequential(layers, input_shape=(8, 8, 3))
    with pytest.raises(ValueError, match=message):
        tm.to_torch(model)
