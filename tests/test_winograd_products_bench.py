"""benchmarks/winograd_products.py: np.matmul against the kernel on the shipped
CNN's Winograd products."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "winograd_products.py"


def test_a_short_run_times_both_ways_on_each_product(tmp_path):
    out = tmp_path / "products.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1", "--batch", "8",
         "--out", str(out)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    results = json.loads(out.read_text())["results"]
    assert len({r["conv"] for r in results}) == 3 and len(results) == 9
    assert {r["product"] for r in results} == {"M = V U", "dU = V^T dM", "dV = dM U^T"}
    for r in results:
        assert set(r["gflops"]) == {"np.matmul", "products"}
        assert all(v > 0 for v in r["us"].values())


def test_model_option_times_the_speedrun_nets_conv(tmp_path):
    out = tmp_path / "products.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1", "--batch", "8",
         "--model", "speedrun", "--out", str(out)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    results = json.loads(out.read_text())["results"]
    assert [r["product"] for r in results] == ["M = V U", "dU = V^T dM", "dV = dM U^T"]
    assert {r["conv"].split(" ")[1] for r in results} == {"8->24"}
    assert all(isinstance(r["kernel"], bool) for r in results)
