"""How tinynet shows itself in Jupyter: outputs updated in place, HTML summaries.

IPython is never imported here unless it is already running the code, so scripts and
the test suite do not need it installed.
"""

from __future__ import annotations

import html
import sys
from typing import Any


def in_notebook() -> bool:
    """True inside a Jupyter kernel whose stdout still goes to the notebook."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    # A terminal IPython has no kernel; a redirected stdout is not the notebook's.
    return (
        shell is not None
        and hasattr(shell, "kernel")
        and type(sys.stdout).__module__.startswith("ipykernel")
    )


class LiveOutput:
    """One output area of a notebook cell, replaced in place on every ``show``.

    The first ``show`` displays the object; later ones send an update to the same
    display, so a notebook saves only the last state (Jupyter's ``display_id``).
    """

    def __init__(self) -> None:
        self._handle: Any = None

    def show(self, obj: Any) -> None:
        """Show ``obj``: anything IPython can display, or a plain ``str``."""
        from IPython.display import display

        raw = isinstance(obj, str)
        if raw:
            obj = {"text/plain": obj}
        if self._handle is None:
            self._handle = display(obj, raw=raw, display_id=True)
        else:
            self._handle.update(obj, raw=raw)


def summary_html(model: Any) -> str:
    """``model.summary()`` as an HTML table: layer, output shape, parameters.

    Parameters
    ----------
    model : a built ``Sequential`` (its ``layers``, ``name``, ``count_params()`` and
        ``buffers()`` are read).
    """
    cell = 'style="text-align:{}; padding:2px 10px"'
    rows = "".join(
        f"<tr><td {cell.format('left')}>{html.escape(layer.name)} "
        f"({type(layer).__name__})</td>"
        f"<td {cell.format('left')}>{(None, *layer.output_shape)}</td>"
        f"<td {cell.format('right')}>{layer.count_params():,}</td></tr>"
        for layer in model.layers
    )
    trainable = model.count_params()
    frozen = sum(v.size for v in model.buffers().values())
    head = "".join(
        f"<th {cell.format(align)}>{name}</th>"
        for name, align in (
            ("Layer (type)", "left"),
            ("Output Shape", "left"),
            ("Param #", "right"),
        )
    )
    return (
        f"<b>Model: &quot;{html.escape(model.name)}&quot;</b> "
        f"input shape {(None, *model.input_shape)}"
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        f"Total params: {trainable + frozen:,} &nbsp; Trainable: {trainable:,} "
        f"&nbsp; Non-trainable: {frozen:,}"
    )
