"""The cost table's arithmetic on fixed records."""
import pytest

from specscope.bench.costs import cost_rows, render_costs
from specscope.core.machine import memory_bandwidth_gbs


def rec(config, steps, drafted, draft_s, verify_s, new, wall, prefill=0.5):
    return {"config": config, "steps": steps, "drafted": drafted, "draft_s": draft_s,
            "verify_s": verify_s, "new_tokens": new, "wall_s": wall, "prefill_s": prefill}


def test_cost_rows_by_hand():
    records = [
        rec("ar", 64, 0, 0.0, 12.8, 64, 14.0),       # t_target = 0.2
        rec("ar", 36, 0, 0.0, 7.2, 36, 8.0),
        rec("draft k=4", 20, 80, 6.4, 5.0, 64, 12.5),  # 4 drafted a step, tau 3.2
        {"config": "hf-assisted k=4", "steps": 20, "drafted": None, "draft_s": None,
         "verify_s": None, "new_tokens": 64, "wall_s": 10.0},
    ]
    rows = [{"config": "ar", "category": "overall", "speedup": 1.0},
            {"config": "draft k=4", "category": "overall", "speedup": 1.1}]
    costs = {c["config"]: c for c in cost_rows(records, rows, target_bytes=3_000_000_000)}
    assert set(costs) == {"ar", "draft k=4"}  # transformers' step timings are not observable
    d = costs["draft k=4"]
    assert d["t_target"] == pytest.approx(0.2)
    assert d["tokens_per_verify"] == pytest.approx(5.0)
    assert d["t_verify"] == pytest.approx(0.25) and d["verify_ratio"] == pytest.approx(1.25)
    assert d["t_draft_token"] == pytest.approx(0.08) and d["draft_ratio"] == pytest.approx(0.4)
    # predicted: tau 3.2 * 0.2 / ((6.4 + 5.0) / 20) = 0.64 / 0.57
    assert d["predicted"] == pytest.approx(0.64 / 0.57)
    assert d["measured"] == 1.1
    assert d["prefill_share"] == pytest.approx(0.5 / 12.5)
    assert d["overhead_share"] == pytest.approx((12.5 - 11.9) / 12.5)
    assert d["target_gbs"] == pytest.approx(15.0)
    assert costs["ar"]["draft_ratio"] is None and costs["ar"]["predicted"] == pytest.approx(1.0)


def test_the_table_renders_and_bandwidth_is_positive():
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(render_costs(cost_rows([rec("ar", 10, 0, 0.0, 2.0, 10, 2.5)], []), 12.3))
    assert "12.3 GB/s" in console.export_text()
    assert memory_bandwidth_gbs(mb=8, repeats=2) > 0


def test_the_verify_cost_curve_is_the_tables_caption():
    from rich.console import Console

    from specscope.bench.costs import curve_line

    curve = {"backend": "llama.cpp", "format": "q4_k_m",
             "pass_s": {"1": 0.05, "2": 0.095, "4": 0.1025, "8": 0.235, "16": 0.4},
             "passes": {"1": 1.0, "2": 1.9, "4": 2.05, "8": 4.7, "16": 8.0}}
    line = curve_line(curve)
    assert line == ("verify-cost curve, llama.cpp q4_k_m: a pass over 1, 2, 4, 8, 16 tokens costs "
                    "1.00, 1.90, 2.05, 4.70, 8.00 one-token passes (one: 50 ms)")
    console = Console(width=200, record=True)
    console.print(render_costs(cost_rows([rec("ar", 10, 0, 0.0, 2.0, 10, 2.5)], []), 12.3, curve))
    assert line in console.export_text() and curve_line(None) == ""
