"""One run of ``examples/mnist_train.py`` with its library calls timed, for
``speedrun_phases.py``::

    python benchmarks/_speedrun_phases_worker.py EVENTS.json --model speedrun ...

Writes ``EVENTS.json``: the moments the worker started, entered and left the
example's ``main``, and ``[phase, begin, end]`` of each timed call made on the main
thread (the kernel-loading thread's calls are its own business: only the main
thread's wait for it counts). A moment is ``[wall, cpu]``: ``time.time()`` and
the process's CPU seconds so far, all threads (``time.process_time()``).
"""

from __future__ import annotations

import time


def now() -> tuple[float, float]:
    return time.time(), time.process_time()


STARTED = now()

import functools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import tinynet  # noqa: E402

# The example of the tinynet imported (PYTHONPATH may name another checkout).
sys.path.insert(0, str(Path(tinynet.__file__).resolve().parents[1] / "examples"))
import mnist_train  # noqa: E402

from tinynet.datasets import IdxDataset  # noqa: E402

Moment = tuple[float, float]
calls: list[tuple[str, Moment, Moment]] = []


def timed(phase: str | Callable[[], str], fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, recording when it ran under ``phase`` when the main thread calls it."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return fn(*args, **kwargs)
        begin = now()
        try:
            return fn(*args, **kwargs)
        finally:
            calls.append((phase() if callable(phase) else phase, begin, now()))

    return wrapper


def predict_phase() -> str:
    """The test evaluation's predictions, or the reloaded model's after the save."""
    saved = any(name == "save" for name, _, _ in calls)
    return "reload check" if saved else "predict test"


def main() -> None:
    events, argv = Path(sys.argv[1]), sys.argv[2:]
    IdxDataset.load_data = timed("load_data", IdxDataset.load_data)  # type: ignore[method-assign]
    threading.Thread.join = timed("kernels wait", threading.Thread.join)  # type: ignore[method-assign]
    model = tinynet.Sequential
    model.fit = timed("fit", model.fit)  # type: ignore[method-assign]
    model.predict = timed(predict_phase, model.predict)  # type: ignore[method-assign]
    model.save = timed("save", model.save)  # type: ignore[method-assign]
    tinynet.load_model = timed("reload check", tinynet.load_model)
    entered = now()
    status = mnist_train.main(argv)
    left = now()
    record = {
        "started": STARTED,
        "main_entered": entered,
        "main_left": left,
        "calls": calls,
    }
    events.write_text(json.dumps(record))
    # Exit as the example's own __main__ does.
    getattr(mnist_train, "exit_fast", sys.exit)(status)


if __name__ == "__main__":
    main()
