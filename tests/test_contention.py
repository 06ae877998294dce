"""benchmarks/contention.py in its smoke mode: it runs, starts and stops its busy
loop, and writes every cell and ratio it promises."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def contention(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(
        "contention", BENCHMARKS / "contention.py"
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "contention", module)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_reports_quiet_and_busy_for_both_variants(contention, tmp_path):
    out = tmp_path / "contention.json"
    result = contention.main(["--smoke", "--models", "mlp", "--json", str(out)])
    assert out.exists()
    assert set(result["summary"]) == {"adaptive mlp", "fixed mlp"}
    for row in result["summary"].values():
        assert row["busy epoch_s"] > 0 and row["quiet epoch_s"] > 0
        assert row["epoch ratio"] == row["busy epoch_s"] / row["quiet epoch_s"]
    assert len(result["times"]["adaptive/busy/mlp predict_ms"]) == 5
    assert len(result["times"]["fixed/quiet/mlp other_cores"]) == 1
    assert result["governor"]  # what the governor chose, after each adaptive cell
    for condition in ("quiet", "busy"):
        pair = result["governor / fixed"][f"mlp {condition}"]
        times = result["times"]
        assert pair["per repeat"] == [
            times[f"adaptive/{condition}/mlp epoch_s"][0]
            / times[f"fixed/{condition}/mlp epoch_s"][0]
        ]


def test_the_variants_compared_run_back_to_back_first_in_turn(contention):
    orders = [contention.cell_order(repeat) for repeat in range(2)]
    for order in orders:
        conditions = [condition for condition, _ in order]
        assert conditions[0] == conditions[1] != conditions[2] == conditions[3]
    for condition in ("quiet", "busy"):
        first, second = ([v for c, v in order if c == condition] for order in orders)
        assert sorted(first) == ["adaptive", "fixed"] and second == first[::-1]


def test_the_busy_loop_runs_inside_its_block_only(contention):
    with contention.busy_core(None) as proc:
        assert proc.poll() is None
    assert proc.returncode is not None
