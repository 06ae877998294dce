"""Models shipped inside the package, and the readers they make up."""

from __future__ import annotations

from importlib import resources
from typing import Any

from .ensemble import Ensemble
from .saving import load_model

#: name -> file in tinynet/pretrained_models/ (package data).
PRETRAINED = {
    "mnist": "mnist_cnn.npz",
    "mnist_seed1": "mnist_cnn_seed1.npz",
    "mnist_wide": "mnist_cnn_wide.npz",
}

#: reader name -> the pretrained models whose probabilities it averages. The digit
#: readers (CLI, web page, ``read_digits``) use "mnist": the 32/64 CNN alone. The
#: wide CNN ("mnist_wide", 48/96 channels) reads more USPS and Semeion scans but
#: one photo and three MNIST test digits fewer, and no more validation digits, so it
#: is a reader to choose, not the default (README, "Real handwriting"); averaging
#: the CNN with "mnist_seed1" likewise reads more scans but one validation digit
#: fewer.
READERS = {
    "mnist": ("mnist",),
    "mnist_wide": ("mnist_wide",),
    "mnist_ensemble": ("mnist", "mnist_seed1"),
}


def pretrained_path(name: str = "mnist") -> Any:
    """Path of a shipped model file; ValueError for an unknown name."""
    if name not in PRETRAINED:
        raise ValueError(
            f"unknown pretrained model {name!r}; "
            f"available: {', '.join(sorted(PRETRAINED))}"
        )
    path = resources.files("tinynet") / "pretrained_models" / PRETRAINED[name]
    if not path.is_file():
        raise FileNotFoundError(
            f"the pretrained model file {PRETRAINED[name]} is missing from this "
            "installation of tinynet (reinstall the package)"
        )
    return path


def load_pretrained(name: str = "mnist") -> Any:
    """Load one model shipped with tinynet.

    ``"mnist"``: the MNIST CNN (``zoo.mnist_cnn()``, 32/64 channels, 0.8 MB), input
    (28, 28, 1) raw pixels in [0, 1], output the probabilities of the ten digits;
    ``model.metadata`` records how it was trained and its test accuracy. It is the
    digit readers' model and the one ``tinynet export`` and the README export.
    ``"mnist_seed1"``: the same network trained independently, from another start,
    with the current ``--augment`` recipe. ``"mnist_wide"``: the wide CNN
    (``zoo.mnist_cnn(width=1.5)``, 48/96 channels, 1.4 MB), the best on small
    scans (``load_reader("mnist_wide")``). Each is one ``Sequential``: a model to
    fine-tune, calibrate or export.
    """
    return load_model(pretrained_path(name))


def load_reader(name: str = "mnist") -> Any:
    """A model the digit readers can use: the shipped models of ``READERS[name]``,
    one ``Sequential``, or several with their probabilities averaged (an
    :class:`~tinynet.ensemble.Ensemble`, which reads but cannot be exported as one
    file: export its members).
    """
    if name not in READERS:
        available = ", ".join(sorted(READERS))
        raise ValueError(f"unknown pretrained reader {name!r}; available: {available}")
    models = [load_pretrained(m) for m in READERS[name]]
    return models[0] if len(models) == 1 else Ensemble(models, name=name)
