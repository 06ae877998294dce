"""How tinynet shows itself in Jupyter: outputs updated in place, HTML summaries and
live learning curves.

IPython is never imported here unless it is already running the code, so scripts and
the test suite do not need it installed.
"""

from __future__ import annotations

import html
import math
import sys
from collections.abc import Mapping, Sequence
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
        """Show ``obj``: anything IPython can display, a plain ``str``, or a dict of
        representations by MIME type (``{"image/svg+xml": ..., "text/plain": ...}``)."""
        from IPython.display import display

        if isinstance(obj, str):
            obj = {"text/plain": obj}
        raw = isinstance(obj, dict)
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


_TRAIN, _VAL = "#1f77b4", "#d62728"  # as in tinynet.plots


def curves_svg(
    history: Mapping[str, Sequence[float]], *, width: int = 760, height: int = 240
) -> str:
    """Loss and accuracy per epoch as a small SVG: training solid, validation dashed.

    Drawn by hand rather than with matplotlib because it is redrawn after every epoch:
    it takes well under a millisecond, where a matplotlib figure takes 0.1-0.2 s.

    Parameters
    ----------
    history : per-epoch values by name ("loss", "val_loss", "accuracy", ...); keys
        ending in ``loss`` go to the left panel, in ``accuracy``/``acc`` to the right,
        other keys are ignored.
    """
    panels = [
        (title, {k: list(v) for k, v in history.items() if k.endswith(ends)})
        for title, ends in (("loss", "loss"), ("accuracy", ("accuracy", "acc")))
    ]
    panels = [(title, series) for title, series in panels if series]
    if not panels:
        raise ValueError(
            f"curves_svg: no key ending in 'loss' or 'accuracy' in {sorted(history)}"
        )
    panel_width = width // len(panels)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">'
    ]
    for i, (title, series) in enumerate(panels):
        parts.append(_panel(title, series, i * panel_width, panel_width, height))
    parts.append("</svg>")
    return "".join(parts)


def _panel(
    title: str, series: dict[str, list[float]], left: int, width: int, height: int
) -> str:
    """One panel of ``curves_svg``: frame, value range, epochs, a line per series."""
    # The plot area; above it, the title on the left and a legend row per series.
    x0, x1, y0, y1 = left + 52, left + width - 12, height - 30, 12 + 14 * len(series)
    finite = [v for values in series.values() for v in values if math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.04 * (hi - lo)  # keeps the lines off the frame
    epochs = max(len(values) for values in series.values())

    def xy(epoch: int, value: float) -> str:
        x = x0 + (x1 - x0) * (epoch / (epochs - 1) if epochs > 1 else 0.0)
        y = y0 + (y1 - y0) * (value - lo + pad) / (hi - lo + 2 * pad)
        return f"{x:.1f},{y:.1f}"

    out = [
        f'<text x="{x0}" y="16" font-size="13">{html.escape(title)}</text>',
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" '
        'fill="none" stroke="#999"/>',
        f'<text x="{x0 - 4}" y="{xy(0, hi).split(",")[1]}" text-anchor="end" '
        f'dominant-baseline="middle">{hi:.4g}</text>',
        f'<text x="{x0 - 4}" y="{xy(0, lo).split(",")[1]}" text-anchor="end" '
        f'dominant-baseline="middle">{lo:.4g}</text>',
        f'<text x="{x0}" y="{y0 + 14}" text-anchor="middle">1</text>',
        f'<text x="{x1}" y="{y0 + 14}" text-anchor="middle">{epochs}</text>'
        if epochs > 1
        else "",
        f'<text x="{(x0 + x1) / 2}" y="{y0 + 24}" text-anchor="middle">epoch</text>',
    ]
    for row, (key, values) in enumerate(sorted(series.items())):
        colour = _VAL if key.startswith("val") else _TRAIN
        dash = ' stroke-dasharray="5,3"' if key.startswith("val") else ""
        points = " ".join(xy(e, v) for e, v in enumerate(values) if math.isfinite(v))
        out.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" '
            f'stroke-width="1.6"{dash}/>'
        )
        if epochs <= 30:  # a marker per epoch, so even one epoch shows
            out += [
                f'<circle cx="{x}" cy="{y}" r="2.5" fill="{colour}"/>'
                for x, y in (point.split(",") for point in points.split())
            ]
        out.append(
            f'<text x="{x1}" y="{16 + 14 * row}" text-anchor="end" '
            f'fill="{colour}">{html.escape(key)} {values[-1]:.4f}</text>'
        )
    return "".join(out)
