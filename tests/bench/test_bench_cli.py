"""`specscope bench` end to end on the tiny-random profile, `--compare`, and every bad input."""
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specscope.bench.report import aggregate
from specscope.cli import app
from tests.clitools import assert_clean_error, write

SAMPLE = str(Path(__file__).resolve().parent.parent / "data" / "spec_bench_sample.jsonl")
runner = CliRunner()
RESULT_KEYS = ("method", "draft_len", "vocab_top_k", "category", "speedup", "tau",
               "acceptance_rate", "tokens_per_s", "mbsu", "identical_share", "per_position")
PLOTS = ("speedup_by_category.png", "acceptance_by_position.png", "speedup_vs_draft_len.png")


def bench(*args):
    return runner.invoke(app, ["bench", "-p", "tiny-random", "--prompts", SAMPLE, *args])


@pytest.fixture(scope="module")
def one_prompt_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out"
    r = bench("--categories", "writing", "--limit", "1", "-n", "12", "-m", "draft", "-k", "3",
              "--reference", "hf", "--out", str(out))
    assert r.exit_code == 0, r.output
    return out, r


def test_one_prompt_run_writes_results_csv_runs_and_plots(one_prompt_run):
    out, r = one_prompt_run
    data = json.loads((out / "results.json").read_text())
    meta = data["meta"]
    for key in ("machine", "torch", "transformers", "dtype", "device", "profile", "command"):
        assert meta[key], key
    assert meta["profile"] == "tiny-random" and meta["dtype"] == "float32"
    assert meta["command"].startswith("specscope bench")
    rows = data["results"]
    configs = {row["config"] for row in rows}
    assert configs == {"ar", "draft k=3", "hf-plain", "hf-assisted k=3", "hf-assisted-heuristic k=3"}
    assert {row["category"] for row in rows} == {"mt_bench", "overall"}
    for row in rows:
        for key in RESULT_KEYS:
            assert key in row, key
    draft = next(row for row in rows if row["config"] == "draft k=3" and row["category"] == "overall")
    assert draft["draft_len"] == 3 and draft["vocab_top_k"] is None
    assert draft["tau"] > 1.0 and 0 < draft["acceptance_rate"] <= 1
    assert 1 <= len(draft["per_position"]) <= 3
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 5 and [x["config"] for x in runs][0] == "ar"
    assert not list(out.glob(".*tmp"))  # no temporary files left behind
    assert "speedup" in r.stdout and "draft k=3" in r.stdout


def test_speedups_recompute_from_the_raw_runs(one_prompt_run):
    out, _ = one_prompt_run
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    rows = json.loads((out / "results.json").read_text())["results"]
    assert aggregate(runs) == rows
    base = next(x for x in runs if x["config"] == "ar")
    draft = next(x for x in runs if x["config"] == "draft k=3")
    row = next(x for x in rows if x["config"] == "draft k=3" and x["category"] == "overall")
    expected = (draft["new_tokens"] / draft["wall_s"]) / (base["new_tokens"] / base["wall_s"])
    assert row["speedup"] == pytest.approx(expected)


def test_greedy_float32_outputs_are_identical_to_the_baseline(one_prompt_run):
    out, _ = one_prompt_run
    rows = json.loads((out / "results.json").read_text())["results"]
    assert all(row["identical_share"] == 1.0 for row in rows), [
        (row["config"], row["identical_share"]) for row in rows]


def test_hf_assisted_sees_the_same_steps_as_our_loop(one_prompt_run):
    out, _ = one_prompt_run
    runs = {x["config"]: x for x in map(json.loads, (out / "runs.jsonl").read_text().splitlines())}
    ours, hf = runs["draft k=3"], runs["hf-assisted k=3"]
    assert (hf["steps"], hf["drafted"], hf["accepted"]) == (ours["steps"], ours["drafted"], ours["accepted"])
    assert runs["hf-plain"]["steps"] == runs["hf-plain"]["new_tokens"]


def test_compare_two_result_directories(one_prompt_run, tmp_path):
    out, _ = one_prompt_run
    other = tmp_path / "other"
    shutil.copytree(out, other)
    data = json.loads((other / "results.json").read_text())
    for row in data["results"]:
        if row["config"] == "draft k=3":
            row["speedup"] = 2 * row["speedup"]
            row["decode_speedup"] = 9.87
            row["speedup_min"], row["speedup_max"], row["prompts"] = 0.5, 4.25, 2
    data["results"] = [row for row in data["results"] if row["config"] != "hf-plain"]
    data["meta"]["dtype"] = "bfloat16"
    (other / "results.json").write_text(json.dumps(data))
    r = runner.invoke(app, ["bench", "--compare", str(out), str(other)])
    assert r.exit_code == 0, r.output
    assert "dtype" in r.stdout and "bfloat16" in r.stdout
    assert "draft k=3" in r.stdout and "+100%" in r.stdout
    assert "only in A: hf-plain" in r.stdout
    assert "9.87x" in r.stdout  # the decode-only speedup, prefill excluded
    assert "1 prompt -> 0.50-4.25" in r.stdout  # the spread over prompts


def test_sampling_run_with_repeats_and_auto_draft_length(tmp_path):
    r = bench("--categories", "qa", "--limit", "1", "-n", "8", "-m", "draft", "-k", "2,auto",
              "-t", "0.8", "--repeats", "2", "--reference", "hf", "--no-plots", "--no-warmup",
              "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 2 * 6 and {x["repeat"] for x in runs} == {0, 1}
    assert {x["draft_len"] for x in runs if x["method"] == "draft"} == {2, "auto"}
    assert not (tmp_path / PLOTS[0]).exists()


def test_ctrl_c_writes_what_finished(tmp_path, monkeypatch):
    from specscope.bench import runner as bench_runner

    real = bench_runner.Runner.measure
    calls = {"n": 0}

    def measure(self, config, ids, seed, max_new_tokens=None):
        if max_new_tokens is None:  # a timed run, not the warm-up
            calls["n"] += 1
            if calls["n"] == 4:
                raise KeyboardInterrupt
        return real(self, config, ids, seed, max_new_tokens)

    monkeypatch.setattr(bench_runner.Runner, "measure", measure)
    r = bench("--categories", "qa", "-n", "6", "-m", "draft", "-k", "2", "--out", str(tmp_path))
    assert r.exit_code == 130
    rows = json.loads((tmp_path / "results.json").read_text())["results"]
    assert json.loads((tmp_path / "results.json").read_text())["meta"]["interrupted"] is True
    runs = (tmp_path / "runs.jsonl").read_text().splitlines()
    assert len(runs) == 3  # prompt 1: ar + draft; prompt 2: ar
    overall = next(x for x in rows if x["config"] == "draft k=2" and x["category"] == "overall")
    assert overall["prompts"] == 1






@pytest.mark.parametrize("args,needles", [
    (["-m", "telepathy"], ["unknown method 'telepathy'"]),
    (["--categories", "poetry"], ["unknown category 'poetry'"]),
    (["-k", "four"], ["--draft-len"]),
    (["-k", "40"], ["draft length"]),
    (["--vocab-top-k", "100"], ["--trimmed"]),
    (["--reference", "vllm"], ["unknown reference"]),
    (["--repeats", "0"], ["--repeats"]),
    (["--limit", "0"], ["--limit"]),
    (["-t", "-1"], ["temperature"]),
    (["--dtype", "float8"], ["unknown dtype"]),
])
def test_bad_options_fail_before_anything_is_written(tmp_path, args, needles):
    out = tmp_path / "out"
    assert_clean_error(bench(*args, "--out", str(out)), *needles)
    assert not out.exists()


def test_empty_prompt_file(tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(app, ["bench", "-p", "tiny-random", "--prompts", write(tmp_path, "e.jsonl", ""),
                            "--out", str(out)])
    assert_clean_error(r, "no prompts")
    assert not out.exists()


def test_missing_prompt_file(tmp_path):
    r = runner.invoke(app, ["bench", "-p", "tiny-random", "--prompts", str(tmp_path / "nope.jsonl")])
    assert_clean_error(r, "prompt file not found")


def test_unwritable_output_directory(tmp_path):
    blocker = Path(write(tmp_path, "a-file", "x"))
    assert_clean_error(bench("--out", str(blocker / "out")), "cannot write to output directory")
    assert_clean_error(bench("--out", str(blocker)), "not a directory")
    assert blocker.read_text() == "x"


def test_compare_needs_results(tmp_path):
    assert_clean_error(runner.invoke(app, ["bench", "--compare", str(tmp_path), str(tmp_path)]),
                       "no results.json")


def test_help_stays_light():
    code = ("import sys, specscope.cli\n"
            "print(','.join(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _has(feature):
    from specscope.core.controls import Controls
    from specscope.session import METHODS

    return {"adaptive_rule": hasattr(Controls(), "adaptive_rule"), "lookup": "lookup" in METHODS}[feature]


@pytest.mark.skipif(not _has("adaptive_rule"), reason="adaptive rules not in Controls yet")
def test_auto_rules_pass_through_and_unknown_rules_fail_early(tmp_path):
    out = tmp_path / "out"
    assert_clean_error(bench("-k", "auto:telepathy", "--out", str(out)), "telepathy")
    assert not out.exists()
    r = bench("--categories", "qa", "--limit", "1", "-n", "8", "-m", "draft", "-k", "auto:heuristic",
              "--no-plots", "--no-warmup", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "draft k=auto:heuristic" in r.stdout


@pytest.mark.skipif(not _has("lookup"), reason="no lookup method yet")
def test_lookup_brings_hf_prompt_lookup(tmp_path):
    r = bench("--categories", "summarization", "--limit", "1", "-n", "10", "-m", "lookup", "-k", "3",
              "--reference", "hf", "--no-plots", "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "results.json").read_text())["results"]
    by = {x["config"]: x for x in rows if x["category"] == "overall"}
    assert set(by) == {"ar", "lookup k=3", "hf-plain", "hf-prompt-lookup k=3"}
    assert by["hf-prompt-lookup k=3"]["identical_share"] == 1.0
