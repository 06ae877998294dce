"""ONNX export: the exported graph, run by onnxruntime, predicts what tinynet predicts.

Agreement means a max abs difference of the probabilities below 1e-5 and the same
argmax for every image, on real MNIST test images for the shipped model and the zoo's
reference MLP and convnet, and on random inputs for small models that, together,
use every layer and every layer option (hypothesis draws the options). Skipped when
onnx or onnxruntime is not installed: ``pip install -e ".[onnx]"``.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

INSTALL = 'pip install -e ".[onnx]"'
onnx = pytest.importorskip("onnx", reason=f"onnx not installed: {INSTALL}")
ort = pytest.importorskip("onnxruntime", reason=f"onnxruntime not installed: {INSTALL}")

import tinynet as tn  # noqa: E402
from tinynet import zoo  # noqa: E402
from tinynet.cli import main  # noqa: E402
from tinynet.datasets import mnist  # noqa: E402
from tinynet.export import build_onnx, to_onnx  # noqa: E402
from tinynet.layers.base import Layer  # noqa: E402

PROB_TOL = 1e-5


def onnx_predict(proto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {"input": x.astype(np.float32)})[0]


def assert_same_predictions(model, x: np.ndarray, **export_args) -> np.ndarray:
    """Export ``model``, run both on ``x``; return the ONNX probabilities."""
    ours = model.predict(x)
    theirs = onnx_predict(build_onnx(model, **export_args), x)
    assert theirs.shape == ours.shape
    assert np.abs(theirs - ours).max() < PROB_TOL
    np.testing.assert_array_equal(theirs.argmax(-1), ours.argmax(-1))
    return theirs


def randomize(model, seed: int = 0):
    """Every parameter and buffer drawn at random (variances positive), so that no
    bias, BatchNorm statistic or scale is the identity it starts as."""
    rng = np.random.default_rng(seed)
    weights = {}
    for key, value in model.get_weights().items():
        if key.endswith("moving_var"):
            weights[key] = rng.uniform(0.5, 2.0, value.shape)
        elif key.endswith("gamma"):
            weights[key] = rng.uniform(0.5, 1.5, value.shape)
        else:
            weights[key] = value + rng.normal(0, 0.1, value.shape)
    model.set_weights(weights)
    return model


@pytest.fixture(scope="module")
def mnist_test(real_mnist_dir):
    """3,000 MNIST training images and labels, and the 10,000 test images, as
    (N, 28, 28) floats in [0, 1]."""
    (x_train, y_train), (x_test, _) = mnist.load_data(real_mnist_dir)
    scale = np.float32(1 / 255)
    return x_train[:3000] * scale, y_train[:3000], x_test * scale


# ------------------------------------------------------------- real MNIST models
def test_shipped_model_file_gives_the_same_predictions(mnist_test, tmp_path):
    _, _, x_test = mnist_test
    model = tn.load_pretrained("mnist")
    path = tmp_path / "mnist.onnx"
    to_onnx(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = x_test[:2000, ..., None]
    theirs = session.run(None, {"input": x})[0]
    ours = model.predict(x)
    assert np.abs(theirs - ours).max() < PROB_TOL
    np.testing.assert_array_equal(theirs.argmax(1), ours.argmax(1))


@pytest.mark.parametrize("kind", ["mlp", "classic_cnn"])
def test_reference_models_give_the_same_predictions(mnist_test, kind):
    x_train, y_train, x_test = mnist_test
    model = zoo.MODELS[kind](seed=0)
    if kind == "classic_cnn":
        x_train, x_test = x_train[..., None], x_test[..., None]
    # A short training run, so that the predictions are confident, not near-ties.
    model.compile(optimizer="adam", loss="cross_entropy")
    model.fit(x_train, y_train, epochs=1, batch_size=128, verbose=0, seed=0)
    assert_same_predictions(model, x_test[:2000])


# --------------------------------------------------- every layer and option
ACTIVATIONS = st.sampled_from(
    [None, "relu", "sigmoid", "tanh", "softmax", tn.LeakyReLU(0.1)]
)
PADDINGS = st.sampled_from(["valid", "same"])


@st.composite
def image_models(draw):
    """A small convnet over a 9x9xC input with every option drawn at random."""
    channels = draw(st.integers(1, 3))
    layers: list[Layer] = []
    if draw(st.booleans()):
        layers.append(tn.Rescaling(draw(st.floats(0.5, 2)), draw(st.floats(-1, 1))))
    layers.append(
        tn.Conv2D(
            draw(st.integers(1, 4)),
            (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
            strides=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
            padding=draw(PADDINGS),
            activation=draw(ACTIVATIONS),
            use_bias=draw(st.booleans()),
        )
    )
    if draw(st.booleans()):
        layers.append(tn.BatchNorm(epsilon=draw(st.sampled_from([1e-3, 1e-5]))))
    layers.append(
        draw(st.sampled_from([tn.ReLU(), tn.LeakyReLU(0.2), tn.Sigmoid(), tn.Tanh()]))
    )
    pool = draw(st.sampled_from([tn.MaxPool2D, tn.AvgPool2D]))
    layers.append(
        pool(
            (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
            strides=draw(st.sampled_from([None, 1, 2, (1, 3)])),
            padding=draw(PADDINGS),
        )
    )
    if draw(st.booleans()):
        layers.append(tn.GlobalAvgPool2D())
    else:
        layers += [tn.Flatten(), tn.Dropout(0.3)]
    layers.append(
        tn.Dense(
            draw(st.integers(2, 6)),
            activation=draw(ACTIVATIONS),
            use_bias=draw(st.booleans()),
        )
    )
    if draw(st.booleans()):
        layers.append(tn.BatchNorm())
    layers.append(tn.Dense(draw(st.integers(2, 5)), activation="softmax"))
    return tn.Sequential(layers, input_shape=(9, 9, channels), seed=0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=image_models(), seed=st.integers(0, 2**16))
def test_every_layer_and_option_exports(model, seed):
    randomize(model, seed)
    x = np.random.default_rng(seed).normal(size=(16, *model.input_shape))
    assert_same_predictions(model, x.astype(np.float32))


@pytest.mark.parametrize("opset", [13, 17, onnx.defs.onnx_opset_version()])
def test_batchnorm_on_a_sequence_and_every_activation_at_each_opset(opset):
    model = tn.Sequential(
        [
            tn.BatchNorm(),  # over the last axis of a (N, 5, 3) input
            tn.Softmax(),
            tn.Flatten(),
            tn.Dense(8, activation="tanh"),
            tn.BatchNorm(),
            tn.Sigmoid(),
            tn.Dense(8, activation="leaky_relu", use_bias=False),
            tn.Dropout(0.5),
            tn.Dense(4, activation=tn.LeakyReLU(0.05)),
            tn.Softmax(),
        ],
        input_shape=(5, 3),
        seed=1,
    )
    randomize(model)
    x = np.random.default_rng(1).normal(size=(32, 5, 3)).astype(np.float32)
    assert_same_predictions(model, x, opset=opset)


def test_channel_softmax_and_batchnorm_on_a_map_output():
    """A model whose output is still an image map comes back in NHWC."""
    model = tn.Sequential(
        [tn.Conv2D(3, 3, padding="same", activation="softmax"), tn.BatchNorm()],
        input_shape=(6, 5, 2),
        seed=0,
    )
    randomize(model)
    x = np.random.default_rng(2).normal(size=(4, 6, 5, 2)).astype(np.float32)
    ours = model.predict(x)
    theirs = onnx_predict(build_onnx(model), x)
    assert theirs.shape == (4, 6, 5, 3)
    assert np.abs(theirs - ours).max() < PROB_TOL


def test_a_float64_model_exports_as_float32():
    model = randomize(zoo.mnist_mlp(seed=0, dtype="float64"))
    x = np.random.default_rng(0).random((64, 28, 28))
    assert_same_predictions(model, x)


# ------------------------------------------------------------ the file itself
def test_the_file_has_a_dynamic_batch_axis_and_metadata(tmp_path):
    model = randomize(zoo.mnist_classic_cnn(seed=0))
    model.metadata = {"classes": list("abcdefghij"), "test_accuracy": 0.5}
    path = tmp_path / "cnn.onnx"
    to_onnx(model, path, opset=17)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 17
    (graph_input,) = proto.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert graph_input.name == "input"
    assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == [28, 28, 1]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["tinynet_version"] == tn.__version__
    assert json.loads(props["classes"]) == list("abcdefghij")
    assert json.loads(props["tinynet_metadata"])["test_accuracy"] == 0.5
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        x = np.random.default_rng(batch).random((batch, 28, 28, 1), np.float32)
        (out,) = session.run(None, {"input": x})
        np.testing.assert_allclose(out, model.predict(x), atol=PROB_TOL)


def test_export_is_reachable_from_the_top_level_package():
    assert tn.export.to_onnx is to_onnx


def test_classes_default_to_the_output_indices():
    model = tn.Sequential([tn.Dense(3, activation="softmax")], input_shape=(4,))
    props = {p.key: p.value for p in build_onnx(model).metadata_props}
    assert json.loads(props["classes"]) == ["0", "1", "2"]


class Square(Layer):
    def forward(self, x, *, training=False):
        return x * x


def test_an_unsupported_layer_is_named_and_nothing_is_written(tmp_path):
    model = tn.Sequential([tn.Dense(4), Square(name="sq")], input_shape=(3,))
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(ValueError, match=r"layer 1 \(Square 'sq'\).*no ONNX export"):
        to_onnx(model, path)
    assert path.read_bytes() == b"previous"
    assert list(tmp_path.iterdir()) == [path]


def test_only_a_sequential_exports():
    with pytest.raises(TypeError, match="expected a tinynet Sequential"):
        build_onnx(tn.Dense(3))
    with pytest.raises(TypeError, match="opset must be an int"):
        build_onnx(tn.Sequential([tn.Dense(2)], input_shape=(3,)), opset="17")


@pytest.mark.parametrize("opset", [12, 10_000])
def test_an_opset_out_of_range_is_refused(opset):
    model = tn.Sequential([tn.Dense(2)], input_shape=(3,))
    with pytest.raises(ValueError, match=f"opset must be in .*got {opset}"):
        build_onnx(model, opset=opset)


def test_without_onnx_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    model = tn.Sequential([tn.Dense(2)], input_shape=(3,))
    with pytest.raises(ImportError, match=r"tinynet\[onnx\]"):
        build_onnx(model)


# ---------------------------------------------------------------------- CLI
def test_cli_exports_a_saved_model(tmp_path, capsys):
    model = randomize(zoo.mnist_mlp(seed=0))
    model.save(tmp_path / "mlp.npz")
    out = tmp_path / "mlp.onnx"
    assert main(["export", str(tmp_path / "mlp.npz"), str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    x = np.random.default_rng(0).random((5, 28, 28), np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        session.run(None, {"input": x})[0], model.predict(x), atol=PROB_TOL
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.npz", "out.onnx"], "missing.npz: no such file"),
        (["model.npz", "out.txt"], "'.txt'"),
        (["model.npz", "out.onnx", "--opset", "5"], "opset must be in"),
        (["model.npz", "out.npz", "--opset", "13"], "--opset applies only"),
    ],
)
def test_cli_export_errors_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    tn.Sequential([tn.Dense(2)], input_shape=(3,)).save("model.npz")
    assert main(["export", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_a_calibrated_model_exports_its_calibrated_probabilities():
    from tinynet.calibration import apply_temperature, logits_from_probabilities

    model = randomize(zoo.mnist_classic_cnn(seed=0))
    x = np.random.default_rng(5).random((8, 28, 28, 1), dtype=np.float32)
    logits = logits_from_probabilities(model.predict(x))
    apply_temperature(model, 3.0)
    theirs = assert_same_predictions(model, x)
    z = logits / 3.0
    want = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(
        theirs, want / want.sum(axis=1, keepdims=True), atol=1e-5
    )


# ------------------------------------------------------------------ deskewing
def slanted_strokes(n: int, seed: int = 0) -> np.ndarray:
    """(n, 28, 28) float32 ink-on-black digits-to-be: a few strokes each, at
    slants up to 1.2 columns per row (past the 0.5 clip), and the cases the
    deskewing treats apart: blank, ink on one row, an upright bar."""
    import cv2

    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.float32)
    for img in x[3:]:
        for _ in range(rng.integers(1, 4)):
            top, bottom = rng.integers(3, 10), rng.integers(18, 25)
            lean, col = rng.uniform(-1.2, 1.2), rng.uniform(9, 19)
            ends = [(col + lean * (r - 14), r) for r in (top, bottom)]
            pts = [(round(c), round(r)) for c, r in ends]
            cv2.line(img, *pts, 1.0, int(rng.integers(1, 4)), cv2.LINE_AA)
    x[1, 14, 5:20] = 1.0  # one row of ink: no slant to measure
    x[2, 5:22, 13:15] = 0.8  # upright: comes back as it is
    return np.clip(x, 0, 1)


@pytest.mark.parametrize("by", ["moments", "strokes"])
@pytest.mark.parametrize("shape", [(28, 28, 1), (28, 28), (784,)])
def test_a_deskewing_model_deskews_in_the_onnx_graph(by, shape):
    """The graph's first nodes do what tinynet.deskew.deskew does, to float32
    rounding, for images, 2-D inputs and an MLP's flattened ones."""
    from tinynet.deskew import deskew

    layers = [tn.Flatten()] if len(shape) > 1 else [tn.Rescaling(1.0)]
    model = tn.Sequential(layers, input_shape=shape)
    model.metadata.update(deskew=0.5, deskew_by=by)
    x = slanted_strokes(40)
    got = onnx_predict(build_onnx(model), x.reshape(len(x), *shape))
    want = deskew(x, 0.5, by=by).reshape(len(x), -1)
    assert not np.array_equal(want, x.reshape(len(x), -1))  # something was sheared
    np.testing.assert_allclose(got.reshape(len(x), -1), want, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got[:1], 0.0)  # blank stays blank


def test_an_exported_deskewing_cnn_reads_as_tinynet_reads():
    from tinynet.deskew import as_read_by

    model = randomize(zoo.mnist_cnn(seed=0))
    model.metadata.update(deskew=0.5, deskew_by="moments")
    x = slanted_strokes(24, seed=1)[..., None]
    np.testing.assert_allclose(  # opset 20 spells GridSample's mode "linear"
        onnx_predict(build_onnx(model, opset=20), x),
        model.predict(as_read_by(model, x)),
        atol=PROB_TOL,
    )


def test_deskewing_needs_opset_16(tmp_path):
    model = tn.Sequential([tn.Flatten()], input_shape=(28, 28, 1))
    model.metadata["deskew"] = 0.5
    with pytest.raises(ValueError, match=r"deskews its inputs.*opset >= 16.*got 15"):
        to_onnx(model, tmp_path / "old.onnx", opset=15)
    assert not (tmp_path / "old.onnx").exists()


def test_cli_exports_a_deskewing_model_without_a_note(tmp_path, capsys):
    model = randomize(zoo.mnist_mlp(seed=0))
    model.metadata.update(deskew=0.5, deskew_by="strokes")
    model.save(tmp_path / "d.npz")
    assert main(["export", str(tmp_path / "d.npz"), str(tmp_path / "d.onnx")]) == 0
    out, err = capsys.readouterr()
    assert str(tmp_path / "d.onnx") in out and err == ""
