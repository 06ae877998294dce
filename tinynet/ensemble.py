"""Several trained models read as one: the mean of their probabilities.

Independently trained networks make partly different mistakes, so the average of
their softmax outputs is right more often than either one (and, for calibrated
members, stays about as well calibrated). An :class:`Ensemble` has what the readers
(:func:`tinynet.vision.read_digits`, the CLI, the web server) ask of a model:
``predict``, ``input_shape``, ``output_shape``, ``name`` and ``metadata``. It is a
reading device, not a trainable model: fine-tune, calibrate, save or export its
members, each a :class:`~tinynet.model.Sequential`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .deskew import as_read_by, reads_deskewed

__all__ = ["Ensemble", "load_models"]


class Ensemble:
    """Average the probabilities of models that read the same inputs.

    Parameters
    ----------
    members : models with ``predict(x, batch_size=..., input_scale=...)`` returning
        probabilities, and equal ``input_shape`` and ``output_shape``.
    name : shown where a reader names its model (the web server's ``/info``).
    """

    def __init__(self, members: Sequence[Any], *, name: str = "ensemble") -> None:
        self.members = tuple(members)
        if not self.members:
            raise ValueError("Ensemble: needs at least one model, got none")
        first = self.members[0]
        for i, m in enumerate(self.members[1:], start=1):
            if tuple(m.input_shape) != tuple(first.input_shape) or tuple(
                m.output_shape
            ) != tuple(first.output_shape):
                raise ValueError(
                    f"Ensemble: model {i} reads {tuple(m.input_shape)} and gives "
                    f"{tuple(m.output_shape)}, model 0 reads "
                    f"{tuple(first.input_shape)} and gives {tuple(first.output_shape)}"
                )
        self.input_shape = tuple(first.input_shape)
        self.output_shape = tuple(first.output_shape)
        self.name = name

    @property
    def metadata(self) -> dict[str, Any]:
        """``{"members": [each member's metadata]}``."""
        return {"members": [dict(getattr(m, "metadata", {})) for m in self.members]}

    def predict(
        self, x: Any, *, batch_size: int = 256, input_scale: float | None = None
    ) -> np.ndarray:
        """Mean probabilities of the members.

        Parameters
        ----------
        x : (N, *input_shape) inputs, as each member's ``predict`` takes them; a
            member trained on deskewed digits (``metadata["deskew"]``) gets them
            deskewed.

        Returns
        -------
        (N, *output_shape) float32: the members' outputs averaged.
        """
        outputs = np.stack(
            [self._member_predict(m, x, batch_size, input_scale) for m in self.members]
        )
        mean: np.ndarray = outputs.mean(axis=0, dtype=np.float32)
        return mean

    @staticmethod
    def _member_predict(
        member: Any, x: Any, batch_size: int, input_scale: float | None
    ) -> np.ndarray:
        """One member's probabilities; a member trained on deskewed digits reads
        them deskewed (:func:`tinynet.deskew.as_read_by`), the others as given."""
        if reads_deskewed(member) is not None:
            if input_scale is not None:
                x = np.multiply(x, input_scale, dtype=np.float32)
                input_scale = None
            x = as_read_by(member, np.asarray(x))
        probs: np.ndarray = member.predict(
            x, batch_size=batch_size, input_scale=input_scale
        )
        return probs

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        names = ", ".join(getattr(m, "name", type(m).__name__) for m in self.members)
        return f"Ensemble([{names}], name={self.name!r})"


def load_models(paths: Sequence[str | os.PathLike[str]]) -> Any:
    """One saved model (a ``Sequential``), or several read as an :class:`Ensemble`.

    Raises what :func:`tinynet.saving.load_model` raises for a file that is not a
    sound model, and ValueError for models that read different shapes.
    """
    from .saving import load_model

    if not paths:
        raise ValueError("load_models: give at least one model file")
    models = [load_model(p) for p in paths]
    if len(models) == 1:
        return models[0]
    return Ensemble(models, name=" + ".join(os.path.basename(p) for p in paths))
