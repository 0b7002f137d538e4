"""Prompt selection (categories, mt_bench, per-category limit), the grid, and the run order."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from specscope import prompts as P
from specscope.bench.grid import (Config, build_grid, hf_grid, parse_draft_lens, parse_methods,
                                  parse_vocab_sizes)
from specscope.bench.runner import Measured, Plan, run_plan, warm_up
from specscope.core.errors import SpecScopeError

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "spec_bench_sample.jsonl"


def test_sample_file_has_two_prompts_per_category():
    from collections import Counter

    assert set(Counter(p.category for p in P.read_prompts(SAMPLE)).values()) == {2}


def test_limit_is_per_category_and_mt_bench_expands_to_the_eight():
    prompts = P.load_prompts(SAMPLE, "mt_bench,qa", 1)
    cats = [p.category for p in prompts]
    assert sorted(cats) == sorted(list(P.MT_BENCH) + ["qa"])
    assert {p.group for p in prompts} == {"mt_bench", "qa"}


def test_first_turn_is_the_prompt():
    first = json.loads(SAMPLE.read_text().splitlines()[0])
    assert P.read_prompts(SAMPLE)[0].text == first["turns"][0]


@pytest.mark.parametrize("text,needle", [
    ("", "no prompts"),
    ("\n\n", "no prompts"),
    ('{"category": "qa"}\n', "'turns'"),
    ('not json\n', "not valid JSON"),
    ('{"category": "qa", "turns": [""]}\n', "non-empty"),
])
def test_bad_prompt_files(tmp_path, text, needle):
    f = tmp_path / "p.jsonl"
    f.write_text(text)
    with pytest.raises(SpecScopeError, match=needle):
        P.read_prompts(f)


def test_unknown_category_names_the_known_ones():
    with pytest.raises(SpecScopeError, match="unknown category 'poetry'.*mt_bench"):
        P.load_prompts(SAMPLE, "qa,poetry", None)


def test_missing_default_file_says_to_pass_prompts(monkeypatch, tmp_path):
    monkeypatch.delenv("SPECSCOPE_BENCH_PROMPTS", raising=False)
    monkeypatch.setattr(P, "DEFAULT_PROMPTS", tmp_path / "missing.jsonl")
    with pytest.raises(SpecScopeError, match="--prompts"):
        P.load_prompts(None, None, None)


def test_grid_parsing():
    assert parse_draft_lens(["2,4", "auto", "4"]) == [2, 4, "auto"]
    assert parse_draft_lens(["learned,auto"]) == ["auto:learned", "auto"]  # H-RAD: the rule auto:learned
    assert parse_vocab_sizes(["1000,full"]) == [1000, None]
    assert parse_methods(["draft,ar"], {"ar": "", "draft": ""}) == ["draft", "ar"]
    for bad, fn in [(["x"], parse_draft_lens), (["33"], parse_draft_lens), (["0"], parse_vocab_sizes)]:
        with pytest.raises(SpecScopeError):
            fn(bad)
    with pytest.raises(SpecScopeError, match="unknown method 'telepathy'"):
        parse_methods(["telepathy"], {"ar": "", "draft": ""})


def test_grid_skips_the_baseline_and_axes_a_method_ignores():
    grid = build_grid(["ar", "draft", "lookup"], [2, "auto"], [None, 500], lambda m: m == "draft")
    assert [c.name for c in grid] == ["draft k=2", "draft k=2 v=500", "draft k=auto",
                                      "draft k=auto v=500", "lookup k=2", "lookup k=auto"]
    hf = hf_grid(["draft", "lookup"], [2, "auto"], 5, has_drafter=True)
    assert [c.name for c in hf] == ["hf-plain", "hf-assisted k=2", "hf-assisted-heuristic k=2",
                                    "hf-prompt-lookup k=2"]
    assert [c.name for c in hf_grid(["draft"], ["auto"], 5, has_drafter=False)] == ["hf-plain"]


class FakeRunner:
    def __init__(self, stop_after=None):
        self.calls = []
        self.stop_after = stop_after
        self.session = SimpleNamespace(profile=SimpleNamespace(backend="torch"))  # records name it

    def measure(self, config, ids, seed, max_new_tokens=None):
        if self.stop_after is not None and len(self.calls) == self.stop_after:
            raise KeyboardInterrupt
        self.calls.append((config.name, ids[0], max_new_tokens))
        return Measured([1, 2], 1.0, 2, 0, 0, [], [], 0.0, "max_new_tokens")


def plan(repeats=1):
    prompts = [P.Prompt("1", "qa", "x"), P.Prompt("2", "rag", "y")]
    return Plan(prompts, [[10], [20]], [Config("draft", 2), Config("hf-plain", kind="hf")], repeats)


def test_baseline_runs_first_on_each_prompt_then_every_configuration():
    runner = FakeRunner()
    warm_up(runner, plan())
    assert [c[0] for c in runner.calls] == ["ar", "draft k=2", "hf-plain"]
    assert all(c[2] is not None for c in runner.calls)  # warm-up runs are short
    runner.calls.clear()
    records, interrupted = run_plan(runner, plan(repeats=2))
    assert not interrupted and len(records) == 12
    assert [(c[0], c[1]) for c in runner.calls[:6]] == [("ar", 10), ("draft k=2", 10), ("hf-plain", 10)] * 2
    assert [r["repeat"] for r in records[:6]] == [0, 0, 0, 1, 1, 1]


def test_ctrl_c_keeps_the_finished_runs():
    records, interrupted = run_plan(FakeRunner(stop_after=4), plan())
    assert interrupted and [r["config"] for r in records] == ["ar", "draft k=2", "hf-plain", "ar"]


def test_training_from_the_end_never_reaches_what_bench_measures_from_the_start():
    """For a file without splits (here the packaged set's lines, splits ignored): its MT-bench
    categories hold 5 prompts, and --limit 8 from the end would take the 2 that `bench --limit 2`
    measures, unless they are kept apart. (The packaged set's own split keeps them apart: see
    test_split_overlap.py.)"""
    every = P.load_prompts(None)
    bench = {p.text for p in P.load_prompts(None, None, 2)}
    reached = {p.text for p in P.load_prompts(None, None, 8, from_end=True)}
    assert bench & reached  # the leak this guards against
    trained = P.load_prompts(None, None, 8, from_end=True, keep_apart=2)
    assert not bench & {p.text for p in trained}
    counts = {c: sum(p.category == c for p in trained) for c in {p.category for p in every}}
    assert counts["coding"] == 3 and counts["qa"] == 8
