"""Calibration, tuning and report prompts kept apart by the code: the packaged set's split, bench's
default (the report split), its refusal of prompts an artifact in use was fitted on (and
--allow-overlap, flagged), and the spread and decode-only numbers beside each speedup."""
import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specscope import prompts as P
from specscope.bench.driver import Options, validate
from specscope.cli import app
from tests.clitools import assert_clean_error

runner = CliRunner()
BENCH = ["bench", "-p", "tiny-random", "-m", "draft", "-k", "3", "-n", "8", "--no-warmup", "--no-plots"]


def test_every_packaged_prompt_has_its_split_by_the_position_rule():
    rows = [json.loads(line) for line in P.DEFAULT_PROMPTS.read_text(encoding="utf-8").splitlines()]
    seen: Counter = Counter()
    for row in rows:  # complete, and deterministic: the rule gives every line's split again
        assert row["split"] == P.split_by_position(seen[row["category"]]), row["question_id"]
        seen[row["category"]] += 1
    prompts = P.read_prompts(P.DEFAULT_PROMPTS)
    for category in seen:  # every category has prompts in every split
        assert {p.split for p in prompts if p.category == category} == set(P.SPLITS), category
    counts = Counter(p.split for p in prompts)
    assert counts == {"report": 96, "tuning": 48, "calibration": 96}


def test_bench_measures_the_report_split_by_default_and_never_what_training_draws(tmp_path):
    prof, prompts, *_ = validate(Options(profile="tiny-random", out=tmp_path / "o"))
    assert prompts and {p.split for p in prompts} == {"report"} and len(prompts) == 96
    tour = validate(Options(profile="tiny-random", limit=3, out=tmp_path / "o"))[1]
    trimmed = P.load_prompts(None, None, 4, from_end=True, split="calibration")  # trim's default
    trained = P.load_prompts(None, None, 3, from_end=True, split="calibration")  # mtp train's
    tuning = P.load_prompts(None, split="tuning")  # mtp train's selection and estimate
    assert not {p.id for p in tour} & {p.id for p in trimmed + trained + tuning}
    assert {p.split for p in trimmed + trained} == {"calibration"}


def test_a_bad_split_is_one_line():
    assert_clean_error(runner.invoke(app, [*BENCH, "--split", "train"]), "--split must be")


def test_a_file_mixing_lines_with_and_without_split_is_refused(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"category": "qa", "turns": ["a?"], "split": "report"}\n'
                 '{"category": "qa", "turns": ["b?"]}\n')
    assert_clean_error(runner.invoke(app, [*BENCH, "--prompts", str(f)]), "all or none")


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory):
    """A tiny trimmed head calibrated on the default prompts (the calibration split, 1 a category)."""
    out = tmp_path_factory.mktemp("trim") / "tiny.safetensors"
    r = runner.invoke(app, ["trim", "--top-k", "300", "-p", "tiny-random", "--limit", "1", "-n", "8",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_trim_records_the_calibration_prompts_it_used(trimmed):
    from specscope.core.vocab import read_trimmed

    meta = read_trimmed(trimmed).meta
    expected = P.load_prompts(None, None, 1, from_end=True, split="calibration")
    assert meta["used_prompts"]["ids"] == [p.id for p in expected]
    assert meta["used_prompts"]["digests"] == [p.digest for p in expected]
    assert meta["used_prompts"]["split"] == meta["calibration"]["split"] == "calibration"


def test_bench_refuses_prompts_the_trimmed_head_was_calibrated_on(trimmed, tmp_path):
    # the writing category's calibration prompts: trim --limit 1 took the last of the two
    r = runner.invoke(app, [*BENCH, "--trimmed", str(trimmed), "--split", "calibration",
                            "--categories", "writing", "--out", str(tmp_path / "o")])
    assert_clean_error(r, "used to fit or select the trimmed head", "--allow-overlap", "ids 89")
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def flagged_run(trimmed, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "o"
    r = runner.invoke(app, [*BENCH, "--trimmed", str(trimmed), "--split", "calibration",
                            "--categories", "writing", "--allow-overlap", "--repeats", "2",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out, r


def test_allow_overlap_runs_and_flags_those_prompts(flagged_run, trimmed):
    out, r = flagged_run
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["overlap"] == {"allowed": True, "prompts": {"89": ["trimmed head"]},
                                       "unchecked": []}
    assert data["meta"]["split"] == "calibration"
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert {x["prompt_id"] for x in runs} == {"87", "89"}
    assert all(x["overlap"] == (["trimmed head"] if x["prompt_id"] == "89" else []) for x in runs)
    assert all(row["overlap_prompts"] == 1 and row["prompts"] == 2 for row in data["results"])
    assert "2 (1!)" in r.stdout and "flatter" in r.stdout
    assert "warning: 1 prompt measured was used to fit or select" in r.stderr


def test_spread_repeats_and_decode_only_numbers_follow_from_the_runs(flagged_run):
    out, r = flagged_run
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    rows = json.loads((out / "results.json").read_text())["results"]

    def per_prompt(config, decode=False):
        tps = {}
        for pid in ("87", "89"):
            sel = [x for x in runs if x["config"] == config and x["prompt_id"] == pid]
            seconds = sum(x["wall_s"] - (x["prefill_s"] if decode else 0) for x in sel)
            tps[pid] = sum(x["new_tokens"] for x in sel) / seconds
        return tps

    draft = next(x for x in rows if x["config"] == "draft k=3" and x["category"] == "overall")
    tps, base = per_prompt("draft k=3"), per_prompt("ar")
    ratios = [tps[p] / base[p] for p in tps]
    assert draft["speedup_min"] == pytest.approx(min(ratios))
    assert draft["speedup_max"] == pytest.approx(max(ratios))
    assert draft["speedup_min"] <= draft["speedup"] <= draft["speedup_max"]
    assert draft["speedup_ci95_low"] <= draft["speedup"] <= draft["speedup_ci95_high"]
    assert len(draft["speedup_by_repeat"]) == 2
    dec, dec_base = per_prompt("draft k=3", True), per_prompt("ar", True)
    assert draft["decode_tokens_per_s"] == pytest.approx(sum(dec.values()) / 2)
    assert draft["decode_speedup"] == pytest.approx(sum(dec.values()) / sum(dec_base.values()))
    assert draft["decode_tokens_per_s"] > draft["tokens_per_s"]  # the prefill is left out
    assert 0 < draft["prefill_share"] < 1
    assert "min-max" in r.stdout and "decode tok/s" in r.stdout
    with open(out / "results.csv") as f:
        header = f.readline()
    assert "speedup_min" in header and "decode_speedup" in header


def test_a_one_prompt_category_says_so(tmp_path):
    r = runner.invoke(app, [*BENCH, "--categories", "writing", "--limit", "1", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "1 prompt" in r.stdout
    row = json.loads((tmp_path / "o" / "results.json").read_text())["results"][-1]
    assert row["speedup_ci95_low"] is None and row["speedup_min"] == row["speedup_max"] == row["speedup"]


def test_an_artifact_without_recorded_prompts_still_loads_and_bench_says_it_cannot_check(trimmed, tmp_path):
    from specscope.core.vocab import read_trimmed

    vocab = read_trimmed(trimmed)
    del vocab.meta["used_prompts"]  # as trim wrote them before it recorded its prompts
    old = vocab.save(tmp_path / "old.safetensors")
    r = runner.invoke(app, [*BENCH, "--trimmed", str(old), "--split", "calibration",
                            "--categories", "writing", "--limit", "1", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    notes = [line for line in r.stderr.splitlines() if "cannot check overlap" in line]
    assert len(notes) == 1 and str(old.name) in notes[0]
    meta = json.loads((tmp_path / "o" / "results.json").read_text())["meta"]
    assert meta["overlap"]["unchecked"] == [f"trimmed head {old}"]


def test_layerskip_search_searches_on_calibration_prompts_and_records_them(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path))
    r = runner.invoke(app, ["layerskip-search", "-p", "tiny-random", "--limit", "2", "--budget", "2",
                            "--new-tokens", "4"])
    assert r.exit_code == 0, r.output
    [result] = (tmp_path / "layerskip").glob("*.json")
    used = json.loads(result.read_text())["used_prompts"]
    calibration = {p.id: p.digest for p in P.load_prompts(None, split="calibration")}
    assert used["split"] == "calibration" and len(used["ids"]) == 2
    assert all(calibration[i] == d for i, d in zip(used["ids"], used["digests"]))


def test_bench_refuses_prompts_the_layerskip_search_ran_on(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path / "cache"))
    r = runner.invoke(app, ["layerskip-search", "-p", "tiny-random", "--limit", "1", "--budget", "2",
                            "--new-tokens", "4"])
    assert r.exit_code == 0, r.output
    [result] = (tmp_path / "cache" / "layerskip").glob("*.json")
    [searched] = json.loads(result.read_text())["used_prompts"]["ids"]
    category = next(p.category for p in P.load_prompts(None, split="calibration") if p.id == searched)
    bench = ["bench", "-p", "tiny-random", "-m", "layerskip", "-k", "2", "-n", "4", "--no-warmup",
             "--no-plots", "--split", "calibration", "--categories", category, "--limit", "2"]
    assert_clean_error(runner.invoke(app, [*bench, "--out", str(tmp_path / "o")]), "layer-skip search")
    assert not (tmp_path / "o").exists()
    r = runner.invoke(app, [*bench, "--allow-overlap", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    runs = [json.loads(line) for line in (tmp_path / "o" / "runs.jsonl").read_text().splitlines()]
    assert {x["prompt_id"] for x in runs if x["overlap"]} == {searched}
    assert all(x["overlap"] == ["layer-skip search"] for x in runs if x["prompt_id"] == searched)
    # the same prompts with another method: the search result is not in use, nothing refused
    r = runner.invoke(app, [*bench[:4], "draft", *bench[5:], "--out", str(tmp_path / "o2")])
    assert r.exit_code == 0, r.output
