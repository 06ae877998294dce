"""Execute every notebook top to bottom in a fresh kernel.

    python notebooks/run_all.py                 # full runs; outputs saved in place
    python notebooks/run_all.py --quick         # the CI settings; nothing saved
    python notebooks/run_all.py backprop_from_scratch.ipynb   # just one

Each notebook has a cell tagged ``parameters`` (data subset, epochs). A quick run adds a
cell after it that overrides them with ``QUICK``; ``tests/test_notebooks.py`` runs
exactly that. Re-run the full mode and commit the outputs after changing a notebook or
the code it shows (the backprop notebook prints the layers' source).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOKS = [
    "mnist_end_to_end.ipynb",
    "backprop_from_scratch.ipynb",
    "tinynet_vs_keras.ipynb",
]
QUICK: dict[str, dict[str, Any]] = {
    "mnist_end_to_end.ipynb": {"TRAIN_LIMIT": 1200, "TEST_LIMIT": 500, "EPOCHS": 1},
    "backprop_from_scratch.ipynb": {"TRAIN_LIMIT": 512, "TEST_LIMIT": 500, "EPOCHS": 1},
    "tinynet_vs_keras.ipynb": {"TRAIN_LIMIT": 512, "TEST_LIMIT": 1000, "REPEATS": 1},
}
NEEDS_KERAS = {"tinynet_vs_keras.ipynb"}


def with_parameters(
    nb: nbformat.NotebookNode, parameters: dict[str, Any]
) -> nbformat.NotebookNode:
    """Insert a cell assigning ``parameters`` right after the ``parameters`` cell."""
    tagged = [
        i
        for i, cell in enumerate(nb.cells)
        if "parameters" in cell.get("metadata", {}).get("tags", [])
    ]
    if len(tagged) != 1:
        raise ValueError(f"expected one cell tagged 'parameters', found {len(tagged)}")
    source = "# Injected parameters\n" + "".join(
        f"{name} = {value!r}\n" for name, value in parameters.items()
    )
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(tagged[0] + 1, cell)
    return nb


def execute(
    path: Path,
    parameters: dict[str, Any] | None = None,
    *,
    timeout: int = 1800,
    client_class: type[NotebookClient] = NotebookClient,
    **kernel_kwargs: Any,
) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` in a fresh kernel (working folder: its own) and
    return it with its outputs; raises ``nbclient.exceptions.CellExecutionError`` on
    the first failing cell. ``kernel_kwargs`` go to the kernel launch (e.g. ``env``).
    """
    nb = nbformat.read(path, as_version=4)
    if parameters:
        nb = with_parameters(nb, parameters)
    client = client_class(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(**kernel_kwargs)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", default=NOTEBOOKS)
    parser.add_argument(
        "--quick", action="store_true", help="CI settings; do not save the outputs"
    )
    args = parser.parse_args(argv)
    has_keras = importlib.util.find_spec("keras") is not None
    for name in args.notebooks:
        path = HERE / Path(name).name
        if name in NEEDS_KERAS and not has_keras:
            print(f"{name}: skipped, needs Keras (pip install -e '.[bench]')")
            continue
        started = time.perf_counter()
        nb = execute(path, QUICK[path.name] if args.quick else None)
        if not args.quick:
            nbformat.write(nb, path)
        size = path.stat().st_size / 1e6
        print(f"{name}: ran in {time.perf_counter() - started:.0f} s, {size:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
