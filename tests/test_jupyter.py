"""How tinynet shows itself in Jupyter, outside a kernel: the model's HTML summary and
notebook detection. Inside a kernel see test_notebooks.py."""

import re

from model_helpers import mlp

from tinynet.jupyter import in_notebook


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
