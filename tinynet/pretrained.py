"""Models shipped inside the package."""

from __future__ import annotations

from importlib import resources
from typing import Any

from .saving import load_model

#: name -> file in tinynet/pretrained_models/ (package data).
PRETRAINED = {"mnist": "mnist_cnn.npz"}


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
    """Load a model shipped with tinynet.

    ``"mnist"``: the best MNIST CNN, input (28, 28, 1) raw pixels in [0, 1], output the
    probabilities of the ten digits; ``model.metadata`` records how it was trained and
    its test accuracy.
    """
    return load_model(pretrained_path(name))
