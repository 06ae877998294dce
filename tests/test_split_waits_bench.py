"""benchmarks/split_waits.py: it runs on this checkout and reports every split."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "split_waits.py"


def test_a_short_run_reports_each_split_and_the_serial_rest(tmp_path):
    out = tmp_path / "waits.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--model", "mlp", "--threads", "2",
         "--batch", "64", "--steps", "3", "--out", str(out)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    data = json.loads(out.read_text())
    summary, splits = data["summary"], data["splits"]
    assert summary["splits_per_step"] == len(splits) > 0
    assert 0 < summary["in_splits_ms"] <= summary["train_step_ms"]
    for split in splits:
        assert split["where"].split()[0] in ("for", "bac")
        assert len(split["busy_ms"]) == len(split["share_on_caller"]) <= 2
        assert split["wall_ms"] >= 0 and min(split["busy_ms"]) >= 0
