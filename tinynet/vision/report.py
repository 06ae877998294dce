"""Read image files one by one and report each reading: the loop behind
``examples/mnist_predict.py`` and ``tinynet predict``.

Each image gives one text block (or one JSON line) on ``out``; an image that cannot be
read, or that the model gives non-finite probabilities for, gives one ``error: ...``
line on ``err`` (or an error JSON line on ``out``), and the others are still read.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .loading import ImageError
from .reading import PredictionError, Reading, error_dict, read_digits

__all__ = ["describe", "digit_titles", "figure_paths", "read_and_report", "top3_text"]


def top3_text(row: Sequence[tuple[int, float]]) -> str:
    """``"7 0.981, 1 0.012, 2 0.004"`` for one digit's ``Reading.top3()`` row."""
    return ", ".join(f"{d} {p:.3f}" for d, p in row)


def describe(file: str, reading: Reading) -> str:
    """Human-readable lines for one reading.

    One digit: ``file: 7  confidence 0.981  top-3: 7 0.981, 1 0.012, 2 0.004``.
    Several: ``file: 42  confidence 0.990 0.951``, then per digit
    ``  digit 1: 4 (0.990)  top-3: ...``. A digit read with a confidence under
    :data:`~tinynet.vision.reading.SURE_CONFIDENCE` gets ``not sure (runner-up 1
    0.301)`` after its confidence.
    """
    top3 = reading.top3()
    notes = [
        "" if sure else f"  not sure (runner-up {d} {p:.3f})"
        for sure, (d, p) in zip(reading.sure, reading.runner_up(), strict=True)
    ]
    conf = " ".join(f"{c:.3f}" for c in reading.confidence)
    head = f"{file}: {reading.digits}  confidence {conf}"
    if len(reading.digits) == 1:
        return f"{head}{notes[0]}  top-3: {top3_text(top3[0])}"
    lines = [head]
    for i, (d, c, note, row) in enumerate(
        zip(reading.digits, reading.confidence, notes, top3, strict=True), 1
    ):
        lines.append(f"  digit {i}: {d} ({c:.3f}){note}  top-3: {top3_text(row)}")
    return "\n".join(lines)


def figure_paths(out: str | os.PathLike[str], files: Sequence[str]) -> list[Path]:
    """``out`` for one image; ``OUT_<stem>.png`` per image (made unique) for several."""
    out = Path(out)
    if len(files) == 1:
        return [out]
    paths, seen = [], set()
    for file in files:
        stem = Path(file).stem or "image"
        candidate, n = stem, 2
        while candidate in seen:
            candidate, n = f"{stem}_{n}", n + 1
        seen.add(candidate)
        paths.append(out.with_name(f"{out.stem}_{candidate}{out.suffix or '.png'}"))
    return paths


def read_and_report(
    files: Sequence[str],
    model: Any,
    *,
    single: bool = False,
    as_json: bool = False,
    plot_paths: Sequence[str | os.PathLike[str]] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Read the digits of each file and print one report per file.

    Parameters
    ----------
    files : image paths, read in order.
    model : passed to :func:`read_digits`.
    single : each image shows one digit (``read_digits(..., multi=False)``).
    as_json : print ``Reading.to_dict`` / ``error_dict`` as one strict JSON line per
        file (no ``NaN`` or ``Infinity``) instead of :func:`describe` blocks and
        ``error: ...`` lines.
    plot_paths : one figure path per file (see :func:`figure_paths`), or None for none.
    out, err : streams for reports and for error lines; default ``sys.stdout`` /
        ``sys.stderr`` at call time.

    Returns
    -------
    int
        The number of files that could not be read (or whose figure could not be
        written).
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    if plot_paths is not None and len(plot_paths) != len(files):
        raise ValueError(
            f"read_and_report: expected one plot path per file ({len(files)}), "
            f"got {len(plot_paths)}"
        )

    def report_error(file: str, message: str) -> None:
        if as_json:
            print(_json_line(error_dict(file, message)), file=out, flush=True)
        else:
            print(f"error: {message}", file=err, flush=True)

    failed = 0
    for i, file in enumerate(files):
        try:
            reading = read_digits(file, model, multi=not single)
        except (ImageError, PredictionError) as exc:
            failed += 1
            report_error(file, _first_line(exc))
            continue
        if as_json:
            print(_json_line(reading.to_dict(file)), file=out, flush=True)
        else:
            print(describe(file, reading), file=out, flush=True)
        if plot_paths is not None:
            try:
                _plot(reading, plot_paths[i])
            except (OSError, ValueError) as exc:  # unwritable path, unknown format
                failed += 1
                message = f"{file}: cannot write the figure {plot_paths[i]}: "
                report_error(file, message + _first_line(exc))
                continue
            if not as_json:
                print(f"  figure: {plot_paths[i]}", file=out, flush=True)
    return failed


def digit_titles(reading: Reading) -> list[str]:
    """Per digit, its name in a figure: ``"7"``, or ``"7? (or 1)"`` when not sure."""
    return [
        d if sure else f"{d}? (or {runner_up})"
        for d, sure, (runner_up, _) in zip(
            reading.digits, reading.sure, reading.runner_up(), strict=True
        )
    ]


def _plot(reading: Reading, path: str | os.PathLike[str]) -> None:
    from ..plots import plot_prediction  # matplotlib only when plotting

    plot_prediction(
        reading.image,
        reading.inputs,
        reading.probabilities,
        path,
        digits=digit_titles(reading),
    )


def _json_line(record: dict[str, Any]) -> str:
    """One line of strict JSON: a NaN or infinity is a bug, never ``NaN`` output."""
    return json.dumps(record, allow_nan=False)


def _first_line(exc: Exception) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
