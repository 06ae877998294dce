"""The notebooks run top to bottom in a fresh kernel (the quick settings of
``notebooks/run_all.py``), and ``fit`` in a notebook keeps one output up to date."""

import importlib.util
import os

import pytest
from conftest import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = REPO / "notebooks"
_spec = importlib.util.spec_from_file_location("run_all", NOTEBOOKS / "run_all.py")
run_all = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_all)


def outputs(nb):
    return [
        out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    ]


def saved_text(out) -> str:
    return out.get("text", "") + out.get("data", {}).get("text/plain", "")


@pytest.mark.parametrize("name", run_all.NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, real_mnist_dir):
    if name in run_all.NEEDS_KERAS and importlib.util.find_spec("keras") is None:
        pytest.skip("Keras is not installed (the bench extra)")
    env = {**os.environ, "TINYNET_DATA": str(real_mnist_dir.parent)}
    nb = run_all.execute(NOTEBOOKS / name, run_all.QUICK[name], timeout=300, env=env)
    figures = [out for out in outputs(nb) if "image/png" in out.get("data", {})]
    assert figures  # every notebook draws
    for out in outputs(nb):
        if out.get("name") == "stderr":
            continue  # TensorFlow's import notices are not ours
        assert "\r" not in saved_text(out) and "\x1b[" not in saved_text(out), out


def test_the_keras_notebook_stops_cleanly_without_keras(tmp_path):
    # A package named keras that cannot be imported stands in for a missing Keras.
    (tmp_path / "keras").mkdir()
    (tmp_path / "keras" / "__init__.py").write_text("raise ImportError('no keras')\n")
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    with pytest.raises(nbclient.exceptions.CellExecutionError) as error:
        run_all.execute(
            NOTEBOOKS / "tinynet_vs_keras.ipynb",
            timeout=120,
            env={**os.environ, "PYTHONPATH": path},
        )
    assert "SystemExit" in str(error.value)
    assert "pip install -e '.[bench]'" in str(error.value)


class CountingClient(nbclient.NotebookClient):
    """Counts the kernel's output messages by type, per cell."""

    def process_message(self, msg, cell, cell_index):
        counts = self.__dict__.setdefault("counts", {})
        kind = msg["msg_type"]
        counts.setdefault(cell_index, {}).setdefault(kind, 0)
        counts[cell_index][kind] += 1
        return super().process_message(msg, cell, cell_index)


FIT_CELL = """
import numpy as np
import tinynet

rng = np.random.default_rng(0)
x = rng.standard_normal((1600, 8)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int64)
model = tinynet.Sequential(
    [tinynet.Dense(16, activation="relu"), tinynet.Dense(2, activation="softmax")],
    input_shape=(8,),
    seed=0,
)
model.compile(metrics=["accuracy"])
live = tinynet.LivePlot()
# 1600 examples in batches of 4: 400 steps per epoch
history = model.fit(x, y, epochs=3, batch_size=4, seed=0, callbacks=[live])
"""


def test_fit_in_a_notebook_updates_one_output_a_bounded_number_of_times(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(FIT_CELL))
    path = tmp_path / "fit.ipynb"
    nbformat.write(nb, path)
    client_nb = nbformat.read(path, as_version=4)
    client = CountingClient(client_nb, timeout=120, kernel_name="python3")
    client.execute()
    # One output for the progress, one for the curves: no pile-up of lines.
    out, curves = client_nb.cells[0].outputs
    assert out.output_type == curves.output_type == "display_data"
    assert "image/png" in curves.data  # the final figure replaced the live SVG
    lines = out.data["text/plain"].splitlines()
    assert [line.split(" ")[:2] for line in lines] == [
        ["Epoch", "1/3"],
        ["Epoch", "2/3"],
        ["Epoch", "3/3"],
    ]
    assert all("400/400" in line and "accuracy" in line for line in lines)
    counts = client.counts[0]
    assert counts.get("stream", 0) == 0 and counts["display_data"] == 2
    # Per epoch, at most one redraw per cell of the bar plus the finished line (of
    # 400 steps) and one of the curves; then the final figure.
    bar_width = 24
    assert 3 <= counts["update_display_data"] <= 3 * (bar_width + 2 + 1) + 1
