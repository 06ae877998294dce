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
    times = result["times"]
    for condition in ("quiet", "busy"):
        pair = result["over fixed"][f"adaptive / fixed, mlp {condition}"]
        assert pair["per repeat"] == [
            times[f"adaptive/{condition}/mlp epoch_s"][0]
            / times[f"fixed/{condition}/mlp epoch_s"][0]
        ]


def test_control_runs_the_fixed_width_again_as_a_third_variant(contention):
    result = contention.main(["--smoke", "--models", "mlp", "--control"])
    assert set(result["summary"]) == {"adaptive mlp", "fixed mlp", "fixed again mlp"}
    assert "fixed again / fixed, mlp quiet" in result["over fixed"]
    # Only the governor's cells leave records: the control runs at the fixed width.
    assert all(cell.startswith("adaptive/") for cell in result["governor"])


@pytest.mark.parametrize("variants", [("adaptive", "fixed"), ("a", "b", "c")])
def test_the_variants_compared_run_back_to_back_each_in_each_place(
    contention, variants
):
    n = len(variants)
    orders = [contention.cell_order(repeat, variants) for repeat in range(2 * n)]
    places: dict = {}
    for repeat, order in enumerate(orders):
        conditions = [condition for condition, _ in order]
        assert conditions[:n] == [conditions[0]] * n  # one condition, then the other
        assert conditions[n:] == [conditions[n]] * n != conditions[:n]
        for condition in ("quiet", "busy"):
            run = [v for c, v in order if c == condition]
            assert sorted(run) == sorted(variants)
            for place, variant in enumerate(run):
                places.setdefault((condition, variant), []).append(place)
            if repeat % 2:  # the order of the repeat before, reversed
                before = [v for c, v in orders[repeat - 1] if c == condition]
                assert run == before[::-1]
    for place in places.values():
        assert sorted(place) == sorted(list(range(n)) * 2)


def test_the_busy_loop_runs_inside_its_block_only(contention):
    with contention.busy_core(None) as proc:
        assert proc.poll() is None
    assert proc.returncode is not None
