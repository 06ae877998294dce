"""Models shipped inside the package, and the readers they make up."""

from __future__ import annotations

from importlib import resources
from typing import Any

from .ensemble import Ensemble
from .saving import load_model

#: name -> file in tinynet/pretrained_models/ (package data).
PRETRAINED = {"mnist": "mnist_cnn.npz", "mnist_seed1": "mnist_cnn_seed1.npz"}

#: reader name -> the pretrained models whose probabilities it averages. The digit
#: readers (CLI, web page, ``read_digits``) use "mnist": the shipped CNN alone, since
#: averaging it with "mnist_seed1" read more USPS and Semeion scans but one MNIST
#: validation digit fewer (README, "Real handwriting").
READERS = {"mnist": ("mnist",), "mnist_ensemble": ("mnist", "mnist_seed1")}


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

    ``"mnist"``: the best MNIST CNN, input (28, 28, 1) raw pixels in [0, 1], output the
    probabilities of the ten digits; ``model.metadata`` records how it was trained and
    its test accuracy. ``"mnist_seed1"``: the same network trained independently,
    from another start, with the current ``--augment`` recipe. Each is one
    ``Sequential``: the model to fine-tune, calibrate or export (``tinynet export``).
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
