"""benchmarks/split_overhead.py: it runs on this checkout and reports what it says."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "split_overhead.py"


def test_a_short_run_reports_every_figure_per_round(tmp_path):
    out = tmp_path / "split.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--splits", "40", "--rounds", "2",
         "--json", str(out)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    data = json.loads(out.read_text())
    (rounds,) = data["runs"].values()
    assert len(rounds) == 2
    for result in rounds:
        assert result["empty_us"] > 0 and result["empty_p90_us"] >= result["empty_us"]
        assert result["alone"] + result["timed"] == 40 // 4
