"""The aggregation arithmetic on hand-written records: speedup is a ratio of mean tok/s."""
import pytest

from specscope.bench.report import aggregate, results_csv, summarize


def rec(config, prompt, tokens, wall, *, group="qa", steps=None, drafted=0, accepted=0,
        pos=((), ()), ids=None, repeat=0, ratio=0.0, method=None, k=None):
    return {"config": config, "kind": "ours", "method": method or config.split()[0], "draft_len": k,
            "vocab_top_k": None, "prompt_id": prompt, "category": group, "group": group,
            "repeat": repeat, "new_tokens": tokens, "wall_s": wall, "steps": steps or tokens,
            "drafted": drafted, "accepted": accepted, "pos_drafted": list(pos[0]),
            "pos_accepted": list(pos[1]), "param_ratio": ratio, "token_ids": ids or [1] * tokens}


@pytest.fixture
def records():
    # Baseline: prompt a 10 tok/s, prompt b 30 tok/s -> mean 20 tok/s.
    # Method: prompt a 40 tok/s, prompt b 40 tok/s -> mean 40 tok/s -> speedup 2.0
    # (the mean of per-prompt ratios would be (4 + 4/3) / 2 = 2.67: not Spec-Bench's definition).
    return [
        rec("ar", "a", 20, 2.0, ids=[1, 2]),
        rec("draft k=2", "a", 20, 0.5, steps=8, drafted=16, accepted=12, pos=([8, 8], [7, 5]),
            ids=[1, 2], ratio=0.25, k=2),
        rec("ar", "b", 30, 1.0, ids=[3]),
        rec("draft k=2", "b", 40, 1.0, steps=12, drafted=24, accepted=16, pos=([12, 12], [10, 6]),
            ids=[9], ratio=0.25, k=2),
    ]


def test_speedup_is_mean_tokens_per_second_over_baseline_mean(records):
    row = summarize([r for r in records if r["config"] != "ar"], [r for r in records if r["config"] == "ar"])
    assert row["tokens_per_s"] == pytest.approx(40.0)
    assert row["baseline_tokens_per_s"] == pytest.approx(20.0)
    assert row["speedup"] == pytest.approx(2.0)


def test_pooled_tau_acceptance_mbsu_positions_and_identical_share(records):
    row = summarize(records[1::2], records[0::2])
    assert row["tau"] == pytest.approx(60 / 20)  # tokens over target passes, pooled
    assert row["acceptance_rate"] == pytest.approx(28 / 40)
    assert row["mean_draft_len"] == pytest.approx(2.0)
    assert row["mbsu"] == pytest.approx(3.0 / (2.0 * 0.25 + 1.0))
    assert row["per_position"] == pytest.approx([17 / 20, 11 / 20])
    assert row["per_position_drafted"] == [20, 20]
    assert row["identical_share"] == pytest.approx(0.5)  # prompt a matches, b does not
    assert row["prompts"] == 2 and row["runs"] == 2


def test_repeats_sum_tokens_and_time_per_prompt():
    rows = [rec("ar", "a", 10, 1.0), rec("ar", "a", 10, 3.0, repeat=1),  # 20 tok / 4 s = 5 tok/s
            rec("m", "a", 10, 1.0), rec("m", "a", 10, 1.0, repeat=1)]  # 20 tok / 2 s = 10 tok/s
    row = summarize(rows[2:], rows[:2])
    assert row["tokens_per_s"] == pytest.approx(10.0)
    assert row["speedup"] == pytest.approx(2.0)


def test_aggregate_groups_then_overall_and_compares_like_with_like(records):
    records = records + [rec("ar", "c", 10, 1.0, group="rag")]  # no method run on c (Ctrl-C)
    rows = aggregate(records)
    by = {(r["config"], r["category"]): r for r in rows}
    assert [(r["config"], r["category"]) for r in rows] == [
        ("ar", "qa"), ("ar", "rag"), ("ar", "overall"), ("draft k=2", "qa"), ("draft k=2", "overall")]
    assert by[("draft k=2", "overall")]["speedup"] == pytest.approx(2.0)  # c left out of both sides
    assert by[("ar", "overall")]["speedup"] == pytest.approx(1.0)
    assert by[("ar", "overall")]["identical_share"] == 1.0
    assert by[("ar", "overall")]["acceptance_rate"] is None
    assert by[("ar", "overall")]["tau"] == 1.0 and by[("ar", "overall")]["mbsu"] == 1.0
    for key in ("method", "draft_len", "vocab_top_k", "category", "speedup", "tau",
                "acceptance_rate", "tokens_per_s", "mbsu", "identical_share", "per_position"):
        assert key in by[("draft k=2", "qa")]


def test_unknown_drafting_leaves_acceptance_and_mbsu_empty():
    rows = [rec("ar", "a", 10, 1.0), {**rec("hf-x", "a", 10, 0.5, steps=5), "drafted": None,
                                      "accepted": None}]
    row = summarize(rows[1:], rows[:1])
    assert row["acceptance_rate"] is None and row["mbsu"] is None
    assert row["tau"] == 2.0 and row["speedup"] == pytest.approx(2.0)


def test_csv_has_one_line_per_row_and_the_keys(records):
    text = results_csv(aggregate(records))
    lines = text.strip().splitlines()
    assert len(lines) == 1 + 4
    header = lines[0].split(",")
    for key in ("method", "draft_len", "vocab_top_k", "category", "speedup", "tau",
                "acceptance_rate", "tokens_per_s", "mbsu", "identical_share", "per_position"):
        assert key in header
    assert "0.8500;0.5500" in text
