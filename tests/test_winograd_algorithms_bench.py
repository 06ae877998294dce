"""benchmarks/winograd_algorithms.py: every algorithm on every Winograd conv of the
shipped CNN, the plan's choice marked."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "winograd_algorithms.py"


def test_a_short_run_times_each_algorithm_on_each_conv(tmp_path):
    out = tmp_path / "algorithms.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1", "--batch", "4",
         "--out", str(out)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    results = json.loads(out.read_text())["results"]
    convs = sorted({r["conv"] for r in results})
    assert len(convs) == 3 and len(results) == 3 * 3
    chosen = {r["conv"]: r["algorithm"] for r in results if r["chosen_by_plan"]}
    assert sorted(chosen) == convs
    assert sorted(chosen.values()) == ["F(4x4, 3x3)", "F(6x6, 3x3)", "F(6x6, 3x3)"]
    assert all(r["forward_ms"] > 0 and r["backward_ms"] > 0 for r in results)
