"""Keras export and import: a model moved either way predicts the same (max abs
difference of the outputs < 1e-5, same argmax), keeps training in Keras, comes back
as a native tinynet model that ``tinynet predict`` and the web page read like any
other, and anything tinynet lacks is refused by name. Skipped when Keras (with
TensorFlow) is not installed: ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading

import cv2
import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytest.importorskip(
    "tensorflow", reason='TensorFlow not installed: pip install -e ".[bench]"'
)
keras = pytest.importorskip(
    "keras", reason='Keras 3 not installed: pip install -e ".[bench]"'
)

import tinynet as tn  # noqa: E402
from tinynet import zoo  # noqa: E402
from tinynet.cli import main  # noqa: E402
from tinynet.datasets import mnist  # noqa: E402
from tinynet.interop import (  # noqa: E402
    from_keras,
    keras_weights,
    save_keras,
    to_keras,
)

TOL = 1e-5
L = keras.layers

# Keras 3.15's own np.array(variable) calls, under NumPy 2.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def assert_same_outputs(a: np.ndarray, b: np.ndarray) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert np.abs(a - b).max() < TOL
    np.testing.assert_array_equal(a.argmax(-1), b.argmax(-1))


def randomize(model, seed: int = 0):
    """Every parameter and buffer moved off its initial value (variances > 0)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for key, value in model.get_weights().items():
        if key.endswith(("moving_var", "gamma")):
            weights[key] = rng.uniform(0.5, 2.0, value.shape)
        else:
            weights[key] = value + rng.normal(0, 0.1, value.shape)
    model.set_weights(weights)
    return model


def every_layer_convnet() -> tn.Sequential:
    """Every tinynet layer class and option that Keras has too."""
    return tn.Sequential(
        [
            tn.Rescaling(1 / 255, -0.5),
            tn.Conv2D(4, 3, padding="same", activation="relu"),
            tn.BatchNorm(momentum=0.9, epsilon=1e-5),
            tn.Conv2D(5, (2, 3), strides=(2, 1), use_bias=False, activation="tanh"),
            tn.LeakyReLU(0.1),
            tn.MaxPool2D(2, strides=1, padding="same"),
            tn.Conv2D(6, 1, activation=tn.LeakyReLU(0.05)),
            tn.AvgPool2D(3, strides=2, padding="same"),
            tn.Sigmoid(),
            tn.Flatten(),
            tn.Dropout(0.3),
            tn.Dense(8, activation="sigmoid"),
            tn.BatchNorm(),
            tn.Tanh(),
            tn.ReLU(),
            tn.Dense(6, activation="softmax"),
        ],
        input_shape=(9, 8, 2),
        seed=0,
    )


def gap_model() -> tn.Sequential:
    return tn.Sequential(
        [
            tn.Conv2D(3, 3, activation="softmax"),
            tn.GlobalAvgPool2D(),
            tn.Dense(4, activation="leaky_relu", use_bias=False),
            tn.Softmax(),
        ],
        input_shape=(7, 7, 1),
        seed=0,
    )


@pytest.fixture(scope="module")
def mnist_test(real_mnist_dir):
    (x_train, y_train), (x_test, y_test) = mnist.load_data(real_mnist_dir)
    scale = np.float32(1 / 255)
    return x_train[:1024] * scale, y_train[:1024], x_test[:1000] * scale, y_test


# ------------------------------------------------------------ tinynet -> Keras
def test_shipped_model_in_keras_reads_mnist_the_same(mnist_test):
    _, _, x_test, _ = mnist_test
    model = tn.load_pretrained("mnist")
    kmodel = to_keras(model)
    x = x_test[..., None]
    assert_same_outputs(kmodel.predict(x, verbose=0), model.predict(x))
    assert kmodel.name == model.name
    assert [layer.name for layer in kmodel.layers] == [
        layer.name for layer in model.layers
    ]


@pytest.mark.parametrize("build", [every_layer_convnet, gap_model, zoo.mnist_mlp])
def test_to_keras_and_back_gives_the_same_outputs(build, tmp_path):
    model = randomize(build())
    rng = np.random.default_rng(1)
    x = (rng.random((32, *model.input_shape)) * 255).astype(np.float32)
    if build is not every_layer_convnet:
        x /= 255
    kmodel = to_keras(model)
    assert_same_outputs(kmodel.predict(x, verbose=0), model.predict(x))

    save_keras(kmodel, tmp_path / "model.keras")
    back = from_keras(tmp_path / "model.keras")
    assert back.input_shape == model.input_shape
    assert_same_outputs(back.predict(x), model.predict(x))


def test_a_float64_model_stays_float64():
    model = randomize(zoo.mnist_mlp(seed=0, dtype="float64"))
    kmodel = to_keras(model)
    assert {layer.compute_dtype for layer in kmodel.layers} == {"float64"}
    back = from_keras(kmodel)
    assert back.dtype == np.float64
    x = np.random.default_rng(0).random((8, 28, 28))
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=0, atol=1e-12)


def test_keras_continues_training_the_exported_model(mnist_test):
    x_train, y_train, x_test, _ = mnist_test
    model = zoo.mnist_classic_cnn(seed=0)
    kmodel = to_keras(model)
    kmodel.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = kmodel.evaluate(x_train[..., None], y_train, verbose=0)
    history = kmodel.fit(
        x_train[..., None], y_train, epochs=1, batch_size=64, verbose=0
    )
    after = kmodel.evaluate(x_train[..., None], y_train, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert after < before
    # And the Keras-trained weights come back into tinynet.
    back = from_keras(kmodel)
    x = x_test[:200, ..., None]
    assert_same_outputs(back.predict(x), kmodel.predict(x, verbose=0))


# ------------------------------------------------------------ Keras -> tinynet
def keras_spelling_model() -> keras.Sequential:
    """Layers and options spelt the Keras way: Activation layers, ReLU with a
    slope, the leaky_relu function, BatchNormalization without scale."""
    return keras.Sequential(
        [
            keras.Input((10, 10, 3)),
            L.Rescaling(1 / 127.5, offset=-1),
            L.Conv2D(4, 3, strides=2, padding="same"),
            L.BatchNormalization(scale=False, epsilon=1e-4),
            L.Activation("relu"),
            L.Conv2D(4, 3, activation="leaky_relu"),
            L.ReLU(negative_slope=0.2),
            L.AveragePooling2D(2),
            L.Flatten(),
            L.Dense(12, activation="tanh"),
            L.BatchNormalization(center=False),
            L.Activation("linear"),
            L.Dropout(0.25),
            L.Dense(5),
            L.Activation("softmax"),
        ],
        name="keras_spelling",
    )


def test_from_keras_reads_layers_spelt_the_keras_way():
    keras.utils.set_random_seed(3)
    kmodel = keras_spelling_model()
    for layer in kmodel.layers:
        if isinstance(layer, L.BatchNormalization):
            size = layer.moving_mean.shape
            layer.moving_mean.assign(np.random.default_rng(0).normal(size=size))
            layer.moving_variance.assign(np.random.default_rng(1).random(size) + 0.5)
    x = np.random.default_rng(2).random((16, 10, 10, 3)).astype(np.float32) * 255
    model = from_keras(kmodel)
    assert model.name == "keras_spelling"
    assert model.input_shape == (10, 10, 3)
    assert_same_outputs(model.predict(x), kmodel.predict(x, verbose=0))


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (L.Lambda(lambda t: t * 2, name="doubler"), "'doubler' \\(Lambda\\) runs"),
        (L.Conv2D(2, 3, dilation_rate=2, name="dil"), r"'dil'.*dilation_rate=\(2, 2\)"),
        (L.Dense(3, activation="gelu", name="g"), "'g'.*activation 'gelu'"),
        (L.LayerNormalization(name="ln"), "'ln' \\(LayerNormalization\\) has no"),
        (L.Activation("elu", name="elu"), "'elu'.*activation 'elu'"),
        (L.ReLU(max_value=6.0, name="relu6"), "'relu6'.*max_value"),
    ],
)
def test_what_tinynet_lacks_is_refused_by_name(layer, message):
    kmodel = keras.Sequential([keras.Input((6, 6, 1)), layer])
    with pytest.raises(ValueError, match=message):
        from_keras(kmodel)


def test_only_sequential_models_with_a_known_input_are_read():
    inputs = keras.Input((4,))
    functional = keras.Model(inputs, L.Dense(2)(inputs), name="fn")
    with pytest.raises(ValueError, match="expected a keras.Sequential.*Functional"):
        from_keras(functional)
    with pytest.raises(ValueError, match="fully known input shape"):
        from_keras(keras.Sequential([L.Dense(2)]))


def test_files_load_only_in_safe_mode(tmp_path):
    kmodel = keras.Sequential([keras.Input((3,)), L.Lambda(lambda t: t + 1)])
    kmodel.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="lambda.keras: Keras cannot load it safely"):
        from_keras(tmp_path / "lambda.keras")
    (tmp_path / "old.h5").write_bytes(b"\x89HDF\r\n")
    with pytest.raises(ValueError, match="old.h5: not a .keras file"):
        from_keras(tmp_path / "old.h5")
    with pytest.raises(FileNotFoundError, match="none.keras: no such file"):
        from_keras(tmp_path / "none.keras")


def test_keras_weights_name_the_first_mismatch():
    keras_mlp = to_keras(zoo.mnist_mlp(seed=0))
    with pytest.raises(ValueError, match="weight W has shape"):
        keras_weights(keras_mlp, zoo.mnist_classic_cnn(seed=0))
    with pytest.raises(ValueError, match="3 Keras layers have weights, but 11"):
        keras_weights(keras_mlp, zoo.mnist_cnn(seed=0))


def test_to_keras_names_a_layer_keras_lacks():
    class Square(tn.layers.Layer):
        def forward(self, x, *, training=False):
            return x * x

    model = tn.Sequential([tn.Dense(2), Square(name="sq")], input_shape=(3,))
    with pytest.raises(ValueError, match="Square 'sq' is a Square, which has no Keras"):
        to_keras(model)


# --------------------------------------- imported models, native everywhere
def digit_png(text: str) -> bytes:
    img = np.full((160, 160 * len(text)), 235, np.uint8)
    for i, ch in enumerate(text):
        cv2.putText(img, ch, (160 * i + 32, 128), 0, 4, 20, thickness=11)
    return cv2.imencode(".png", img)[1].tobytes()


@pytest.fixture(scope="module")
def reimported(tmp_path_factory):
    """The shipped model sent through Keras (CLI: .npz -> .keras -> .npz)."""
    folder = tmp_path_factory.mktemp("reimport")
    shipped = tn.pretrained.pretrained_path("mnist")
    assert main(["export", str(shipped), str(folder / "mnist.keras")]) == 0
    assert main(["export", str(folder / "mnist.keras"), str(folder / "back.npz")]) == 0
    (folder / "42.png").write_bytes(digit_png("42"))
    return folder


def test_predict_reads_a_reimported_model_like_the_native_one(reimported, capsys):
    image = str(reimported / "42.png")
    capsys.readouterr()
    assert main(["predict", image, "--json"]) == 0
    native = json.loads(capsys.readouterr().out)
    assert (
        main(["predict", image, "--json", "--model", str(reimported / "back.npz")]) == 0
    )
    imported = json.loads(capsys.readouterr().out)
    assert imported["digits"] == native["digits"] == "42"
    np.testing.assert_allclose(
        imported["probabilities"], native["probabilities"], atol=TOL
    )


def test_the_web_page_serves_a_reimported_model(reimported):
    from tinynet.server import DigitServer

    model = tn.load_model(reimported / "back.npz")
    server = DigitServer(("127.0.0.1", 0), model, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = http.client.HTTPConnection(*server.server_address[:2], timeout=60)
        conn.request("POST", "/api/predict?file=42.png", body=digit_png("42"))
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["digits"] == "42"
    finally:
        server.shutdown()
        server.server_close()


def test_cli_refuses_a_keras_file_it_cannot_read_in_one_line(tmp_path, capsys):
    kmodel = keras.Sequential([keras.Input((3,)), L.Dense(2, activation="gelu")])
    kmodel.save(tmp_path / "gelu.keras")
    assert main(["export", str(tmp_path / "gelu.keras"), str(tmp_path / "g.npz")]) == 2
    err = capsys.readouterr().err
    assert "activation 'gelu'" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g.npz").exists()


def test_the_interop_package_imports_without_keras(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras", None)
    with pytest.raises(ImportError, match="pip install keras"):
        to_keras(zoo.mnist_mlp(seed=0))


def test_to_keras_warns_that_the_keras_model_does_not_deskew():
    from tinynet.deskew import DeskewNotExported

    model = zoo.mnist_mlp(seed=0)
    model.metadata["deskew"] = 0.5
    with pytest.warns(DeskewNotExported, match="the Keras model does not deskew"):
        to_keras(model)


def test_cli_keras_export_notes_that_the_file_does_not_deskew(tmp_path, capsys):
    model = zoo.mnist_mlp(seed=0)
    model.metadata.update(deskew=0.5, deskew_by="strokes")
    model.save(tmp_path / "d.npz")
    out_file = tmp_path / "d.keras"
    assert main(["export", str(tmp_path / "d.npz"), str(out_file)]) == 0
    out, err = capsys.readouterr()
    assert str(out_file) in out
    notes = [line for line in err.splitlines() if line.startswith("tinynet export:")]
    assert notes == [
        "tinynet export: note: the Keras model does not deskew its inputs, but the "
        "model was trained on deskewed digits: deskew them first, as tinynet's "
        "readers do (tinynet.deskew.deskew(x, 0.5, by='strokes'))"
    ]
    assert out_file.is_file()
