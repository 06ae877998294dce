"""The progress bar in a terminal and in a log file (notebook: test_notebooks.py)."""

import io
import re

from tinynet.progress import LogView, ProgressBar, TerminalView


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_bar_redrawn_in_place():
    stream = Terminal()
    bar = ProgressBar(4, "Epoch 1/1", stream)
    assert isinstance(bar.view, TerminalView)
    bar.update(1, {"loss": 0.5})
    bar.finish({"loss": 0.25})
    out = stream.getvalue()
    assert out.startswith("\rEpoch 1/1 [") and "1/4 loss 0.5000" in out
    assert out.count("\n") == 1 and out.endswith("\n")
    assert "\rEpoch 1/1 4/4" in out and "loss 0.2500" in out


def test_a_log_file_gets_the_finished_line_only():
    stream = io.StringIO()
    bar = ProgressBar(4, "Epoch 2/3", stream)
    assert isinstance(bar.view, LogView)
    for done in range(1, 5):
        bar.update(done, {"loss": 1.0 / done})
    bar.finish({"loss": 0.25, "lr": 0.1})
    assert re.fullmatch(r"Epoch 2/3 4/4 \d+\.\ds loss 0\.2500\n", stream.getvalue())
