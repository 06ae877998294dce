"""How tinynet shows itself in Jupyter, outside a kernel: the model's HTML summary and
notebook detection. Inside a kernel see test_notebooks.py."""

import re

import pytest
from model_helpers import mlp

from tinynet.jupyter import curves_svg, in_notebook


def test_a_model_shows_its_summary_as_an_html_table():
    model = mlp()
    html = model._repr_html_()
    rows = re.findall(r"<tr><td.*?</tr>", html)
    assert len(rows) == len(model.layers)
    for row, layer in zip(rows, model.layers, strict=True):
        assert f"{layer.name} ({type(layer).__name__})" in row
        assert f"{layer.count_params():,}" in row
    buffers = sum(v.size for v in model.buffers().values())
    assert buffers > 0  # BatchNorm's running statistics
    assert f"Total params: {model.count_params() + buffers:,}" in html
    assert f"Trainable: {model.count_params():,}" in html


def test_the_model_name_is_escaped():
    model = mlp()
    model.name = "<b>mine</b>"
    assert "&lt;b&gt;mine&lt;/b&gt;" in model._repr_html_()


def test_pytest_is_not_a_notebook():
    assert not in_notebook()


def test_the_live_svg_draws_every_series_up_to_its_last_value():
    history = {
        "loss": [0.9, 0.5, 0.3],
        "val_loss": [0.8, 0.6, float("nan")],
        "accuracy": [0.7, 0.8, 0.9],
        "lr": [0.1, 0.1, 0.1],
    }
    svg = curves_svg(history)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    polylines = re.findall(r'<polyline points="([^"]*)"', svg)
    assert [len(p.split()) for p in polylines] == [3, 2, 3]  # NaN left out; no lr
    assert "loss 0.3000" in svg and "accuracy 0.9000" in svg and "lr" not in svg
    with pytest.raises(ValueError, match="no key ending in 'loss'"):
        curves_svg({"lr": [0.1]})
