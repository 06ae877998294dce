"""How ``fit`` reports progress: a bar redrawn in place in a terminal, one output kept
up to date in a notebook, one line per epoch in a log file or pipe."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class TerminalView:
    """A terminal: the bar is redrawn in place with carriage returns."""

    live, interval, only_when_bar_grows = True, 0.1, False

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def draw(self, line: str) -> None:
        self.stream.write(f"\r{line}  ")
        self.stream.flush()

    def finish(self, line: str) -> None:
        self.stream.write(f"\r{line}{' ' * 8}\n")
        self.stream.flush()


class LogView:
    """A file or pipe (logs, CI): no bar, one line per finished epoch."""

    live, interval, only_when_bar_grows = False, 0.0, False

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def draw(self, line: str) -> None: ...

    def finish(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


class NotebookView:
    """A Jupyter cell: one output, replaced in place, holding every epoch's line.

    Each redraw is a message to the browser, so an epoch redraws only when the bar
    grows by a cell (at most ``ProgressBar.width`` times) and never faster than
    ``interval``; the saved notebook keeps only the final lines.
    """

    live, interval, only_when_bar_grows = True, 0.2, True

    def __init__(self) -> None:
        from .jupyter import LiveOutput

        self.output = LiveOutput()
        self.lines: list[str] = []

    def draw(self, line: str) -> None:
        self.output.show("\n".join([*self.lines, line]))

    def finish(self, line: str) -> None:
        self.lines.append(line)
        self.output.show("\n".join(self.lines))


ProgressView = TerminalView | LogView | NotebookView


def progress_view(stream: TextIO | None = None) -> ProgressView:
    """Where ``fit`` reports progress: the notebook, a terminal, or a log stream.

    Parameters
    ----------
    stream : where to write; default ``sys.stdout``, shown in place in a notebook.
    """
    from .jupyter import in_notebook

    if stream is None and in_notebook():
        return NotebookView()
    stream = stream or sys.stdout
    if hasattr(stream, "isatty") and stream.isatty():
        return TerminalView(stream)
    return LogView(stream)


class ProgressBar:
    """One line per epoch: ``3/12 [=====> ] 234/469 loss 0.1234 accuracy 0.97 ETA 4s``.

    ``view`` says where it goes (see ``progress_view``): redrawn in place on a
    terminal or in a notebook; in a log, only the finished line.
    """

    width = 24

    def __init__(
        self,
        total: int,
        prefix: str,
        stream: TextIO | None = None,
        *,
        view: ProgressView | None = None,
    ) -> None:
        self.total, self.prefix = total, prefix
        self.view = view if view is not None else progress_view(stream)
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_filled = -1

    def update(self, done: int, logs: dict[str, float]) -> None:
        if not self.view.live:
            return
        now = time.perf_counter()
        filled = int(self.width * done / self.total)
        if now - self._last_draw < self.view.interval:
            return
        if self.view.only_when_bar_grows and filled == self._last_filled:
            return
        self._last_draw, self._last_filled = now, filled
        elapsed = now - self.start
        eta = elapsed / done * (self.total - done) if done else 0.0
        bar = (
            "=" * max(filled - 1, 0)
            + (">" if filled < self.width else "=")
            + " " * (self.width - filled)
        )
        self.view.draw(
            f"{self.prefix} [{bar}] {done}/{self.total} {_fmt(logs)} ETA {eta:.0f}s"
        )

    def finish(self, logs: dict[str, float]) -> None:
        elapsed = time.perf_counter() - self.start
        self.view.finish(
            f"{self.prefix} {self.total}/{self.total} {elapsed:.1f}s {_fmt(logs)}"
        )


def _fmt(logs: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in logs.items() if k not in ("lr", "time"))
