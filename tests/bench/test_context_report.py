"""Context length in bench results: per-row context, per-token costs, the context plots, and a
run whose long prompt is read in chunks with progress on stderr."""
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specscope.bench.plots import CONTEXT_PLOTS, spans_contexts, write_plots
from specscope.bench.report import aggregate, render_table, results_csv
from specscope.cli import app
from tests.clitools import assert_clean_error

CORPUS = Path(__file__).resolve().parents[2] / "specscope" / "data" / "tiny_corpus.txt"


def rec(config, prompt, group, ctx, *, draft_s=0.0, read_s=0.0, verify_s=1.0, steps=10, drafted=0):
    return {"config": config, "kind": "ours", "method": config.split()[0], "draft_len": None,
            "vocab_top_k": None, "prompt_id": prompt, "category": group, "group": group,
            "repeat": 0, "prompt_tokens": ctx, "new_tokens": 20, "wall_s": 2.0, "steps": steps,
            "drafted": drafted, "accepted": drafted // 2, "pos_drafted": [], "pos_accepted": [],
            "param_ratio": 0.2, "token_ids": [1], "draft_s": draft_s, "draft_prefill_s": read_s,
            "verify_s": verify_s}


RECORDS = [
    rec("ar", "a", "long-1k", 1000), rec("ar", "b", "long-1k", 1200),
    rec("ar", "c", "long-8k", 8000, verify_s=2.0),
    rec("draft", "a", "long-1k", 1000, draft_s=1.0, read_s=0.5, drafted=20),
    rec("draft", "b", "long-1k", 1200, draft_s=0.5, drafted=10),
    rec("draft", "c", "long-8k", 8000, draft_s=9.0, read_s=6.0, drafted=15, verify_s=4.0, steps=5),
]


def test_rows_carry_context_and_per_token_costs_without_the_drafters_prefill():
    rows = {(r["config"], r["category"]): r for r in aggregate(RECORDS)}
    assert rows["draft", "long-1k"]["context_tokens"] == pytest.approx(1100)
    assert rows["draft", "long-8k"]["context_tokens"] == pytest.approx(8000)
    assert rows["draft", "overall"]["context_tokens"] == pytest.approx(10200 / 3)
    assert rows["draft", "long-1k"]["t_draft_token"] == pytest.approx((0.5 + 0.5) / 30)
    assert rows["draft", "long-8k"]["t_draft_token"] == pytest.approx(3.0 / 15)
    assert rows["draft", "long-8k"]["t_verify"] == pytest.approx(4.0 / 5)
    assert rows["ar", "long-8k"]["t_verify"] == pytest.approx(2.0 / 10)
    assert rows["ar", "long-1k"]["t_draft_token"] is None  # nothing drafted
    assert "context_tokens" in results_csv(aggregate(RECORDS)).splitlines()[0]


def test_the_table_shows_context_and_rows_without_it_still_render():
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(render_table(aggregate(RECORDS)))
    text = console.export_text()
    assert "context" in text and "8,000" in text and "1,100" in text
    old = [{k: v for k, v in r.items() if k != "prompt_tokens"} for r in RECORDS]  # older runs
    console.print(render_table(aggregate(old)))


def test_context_plots_only_when_lengths_differ(tmp_path):
    rows = aggregate(RECORDS)
    assert spans_contexts(rows)
    write_plots(tmp_path, rows, {})
    for name in CONTEXT_PLOTS:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    same = aggregate([r for r in RECORDS if r["group"] == "long-1k"])
    assert not spans_contexts(same)
    write_plots(tmp_path, same, {})  # the same folder: an earlier result's context plots go
    assert not any((tmp_path / name).exists() for name in CONTEXT_PLOTS)


def test_a_bench_with_a_long_prompt_reads_it_in_chunks(tmp_path):
    long = " ".join(CORPUS.read_text().split("\n")[:15])  # ~730 tiny tokens: 2 chunks
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"category": "short", "turns": ["Name three caches."]}) + "\n"
                       + json.dumps({"category": "long", "turns": [long]}) + "\n")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["bench", "-p", "tiny-random", "--prompts", str(prompts), "-n", "6",
                                 "-m", "draft", "-k", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "reading the prompt (target)" in r.stderr and "reading the prompt (drafter)" in r.stderr
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    by = {(x["config"], x["category"]): x for x in runs}
    assert by["draft k=3", "long"]["prompt_tokens"] > 512 > by["draft k=3", "short"]["prompt_tokens"]
    assert by["draft k=3", "long"]["draft_prefill_s"] > 0 == by["draft k=3", "short"]["draft_prefill_s"]
    rows = json.loads((out / "results.json").read_text())["results"]
    assert all(row["context_tokens"] for row in rows)
    for name in CONTEXT_PLOTS:
        assert (out / name).is_file()
    assert "context" in r.stdout


def test_long_names_the_packaged_set_and_a_bad_length_fails_before_loading(tmp_path):
    r = CliRunner().invoke(app, ["bench", "-p", "tiny-random", "--prompts", "long",
                                 "--categories", "long-16k", "--out", str(tmp_path / "o")])
    assert_clean_error(r, "unknown category 'long-16k'", "long-1k, long-2k, long-4k, long-8k")
    help_text = CliRunner().invoke(app, ["bench", "--help"]).stdout
    assert "long-context" in help_text and "long-1k" in help_text


def test_the_cost_table_counts_the_drafters_reading_as_prefill():
    from specscope.bench.costs import cost_rows

    draft = next(c for c in cost_rows(RECORDS, aggregate(RECORDS)) if c["config"] == "draft")
    assert draft["t_draft_token"] == pytest.approx((1.0 + 0.5 + 9.0 - 0.5 - 6.0) / 45)
    assert draft["prefill_share"] == pytest.approx(6.5 / 6.0)
