"""tinynet computes what Keras computes: same weights in, same outputs and gradients.

Keras' freshly initialised weights are copied into tinynet's twin of each model
(no transposes: both use Dense (in, out) and Conv2D (kh, kw, cin, cout) kernels and
flatten NHWC maps in the same order). Outputs on one batch must agree to a relative
error of 1e-5 and the gradient of the mean cross-entropy with respect to every weight
to 1e-4 in float32; in float64 both must agree to 1e-10. The error is the max-norm
relative error, ``tinynet.gradcheck.rel_error(..., per="array")``. Skipped when
Keras (with TensorFlow) is not installed: ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytest.importorskip(
    "tensorflow", reason='TensorFlow not installed: pip install -e ".[bench]"'
)
keras = pytest.importorskip(
    "keras", reason='Keras 3 not installed: pip install -e ".[bench]"'
)


def _load_compare_common():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "_compare_common.py"
    spec = importlib.util.spec_from_file_location("_compare_common", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cc = _load_compare_common()

TOLERANCES = {"float32": (1e-5, 1e-4), "float64": (1e-10, 1e-10)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_outputs_and_gradients_match_keras(kind: str, dtype: str) -> None:
    result = cc.parity(kind, dtype, batch=32, seed=1)
    out_tol, grad_tol = TOLERANCES[dtype]
    assert result["output_dtype"] == dtype
    assert result["output"] <= out_tol, result
    assert result["loss"] <= out_tol, result
    # One entry per Keras weight: kernel and bias of each of the three layers.
    assert len(result["grads"]) == 6
    for key, err in result["grads"].items():
        assert err <= grad_tol, f"{kind} {dtype} gradient {key}: {err:.3g}"
    # The zero-learning-rate step must leave the copied weights exactly as they were.
    assert result["params_moved_by_zero_lr_step"] == 0.0


def test_weight_transfer_refuses_a_different_architecture() -> None:
    kmodel = cc.keras_model("mlp")
    tmodel = cc.tinynet_model("cnn")
    with pytest.raises(ValueError, match="has shape"):
        cc.keras_weights_for_tinynet(kmodel, tmodel)
