"""`mtp train` on the packaged set: trains on the calibration split, selects and estimates on two
disjoint parts of the tuning split, records what it used, labels its selection number; `bench`
then refuses the prompts it trained on, and a --corpus holding tuning prompts is refused."""
import pytest
from typer.testing import CliRunner

from specscope import prompts as P
from specscope.cli import app
from tests.clitools import assert_clean_error

runner = CliRunner()
TRAIN = ["mtp", "train", "-p", "tiny-random", "--limit", "1", "--held", "2", "--max-new-tokens", "6",
         "--tokens", "100", "--samples", "1"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A FastMTP head trained on the default prompts, where bench finds it (the cache)."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPECSCOPE_CACHE", str(folder))
        r = runner.invoke(app, TRAIN)
    assert r.exit_code == 0, r.output
    return folder, r


def test_the_head_records_its_prompts_by_split_and_labels_its_selection_number(cache):
    from specscope.core.mtp import read_meta

    folder, r = cache
    training = read_meta(folder / "mtp" / "tiny-random.safetensors")[0]["training"]
    calibration = P.load_prompts(None, None, 1, from_end=True, split="calibration")
    tuning = {p.id for p in P.load_prompts(None, split="tuning")}
    assert training["split"] == "calibration"
    trained = training["train_prompts"]["ids"]  # (prompts over --max-prompt-tokens are skipped)
    assert trained and set(trained) <= {p.id for p in calibration} and "89" in trained
    selection, estimate = training["selection_prompts"]["ids"], training["estimate_prompts"]["ids"]
    assert len(selection) == len(estimate) == 2 and not set(selection) & set(estimate)
    assert set(selection) | set(estimate) <= tuning
    used = set(training["used_prompts"]["ids"])
    assert used == set(trained) | set(selection)  # trained or selected on
    assert not used & set(estimate)  # only measured
    assert len(training["estimate_acceptance"]) == len(training["held_acceptance"]) == 3
    assert "selection" in training["numbers"]["held_loss, held_acceptance, init_scores"]
    assert "held-out" in training["numbers"]["estimate_loss, estimate_acceptance"]
    out = " ".join(r.stdout.split())
    assert "selection (2 prompts; a selection number" in out
    assert "held-out estimate (2 prompts used for neither training nor selection)" in out


def test_bench_refuses_the_prompts_the_head_was_trained_on(cache, tmp_path, monkeypatch):
    from specscope.bench.driver import Options, validate

    folder, _ = cache
    monkeypatch.setenv("SPECSCOPE_CACHE", str(folder))
    r = runner.invoke(app, ["bench", "-p", "tiny-random", "-m", "mtp", "--split", "calibration",
                            "--categories", "writing", "--out", str(tmp_path / "o")])
    assert_clean_error(r, "used to fit or select the FastMTP head", "ids 89")
    # the report split (the default): nothing to refuse; a method without the head: not checked
    assert not validate(Options(profile="tiny-random", methods=["mtp"], out=tmp_path / "o"))[-1].flagged
    assert not validate(Options(profile="tiny-random", methods=["lookup"], split="calibration",
                                out=tmp_path / "o"))[-1].flagged


def test_a_corpus_holding_tuning_prompts_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path))
    r = runner.invoke(app, [*TRAIN, "--corpus", str(P.DEFAULT_PROMPTS)])
    assert_clean_error(r, "--corpus holds 48 prompts of the tuning split")


def test_mtp_eval_measures_the_head_on_prompts_it_never_saw(cache, monkeypatch):
    """`mtp eval`: the report split by default, per category and in all, the target's answers
    cached (a second head or run reuses them); the calibration split is refused (trained on)
    unless allowed, and then flagged."""
    import json

    folder, _ = cache
    monkeypatch.setenv("SPECSCOPE_CACHE", str(folder))
    args = ["mtp", "eval", "-p", "tiny-random", "--categories", "writing,qa", "--max-new-tokens", "6"]
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    report = {p.id for p in P.load_prompts(None, "writing,qa", 2, split="report")}
    assert out["overall"]["prompts"] == len(report) == 4
    assert set(out["categories"]) == {"writing", "qa"}
    assert len(out["overall"]["acceptance"]) == 3 and 0 < out["overall"]["in_rows"] <= 1
    assert out["answers_resumed"] == 0 and not out["flagged"]
    again = json.loads(runner.invoke(app, [*args, "--json"]).stdout.strip().splitlines()[-1])
    assert again["answers_resumed"] == 4 and again["overall"] == out["overall"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "acceptance at steps 1..3" in r.stdout and "all" in r.stdout
    trained = ["mtp", "eval", "-p", "tiny-random", "--categories", "writing", "--max-new-tokens", "6",
               "--split", "calibration", "--limit", "0"]  # writing's 2, one of them trained on
    assert_clean_error(runner.invoke(app, trained), "used to fit or select the FastMTP head", "ids 89")
    r = runner.invoke(app, [*trained, "--allow-overlap"])
    assert r.exit_code == 0 and "flagged: the head was trained or selected on 1 of these" in " ".join(r.stdout.split())


def test_mtp_eval_refuses_bad_input_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path))
    assert_clean_error(runner.invoke(app, ["mtp", "eval", "-p", "tiny-random"]),
                       "no trained FastMTP head for profile 'tiny-random'", "mtp train")
    assert_clean_error(runner.invoke(app, ["mtp", "eval", "-p", "tiny-random", "--split", "x"]),
                       "--split must be")
    assert_clean_error(runner.invoke(app, ["mtp", "eval", "--head", str(tmp_path / "none.safetensors")]),
                       "no FastMTP head at")
    assert_clean_error(runner.invoke(app, ["mtp", "eval", "-p", "tiny-random", "--script-rows", "-1"]),
                       "--script-rows must be >= 0")


def test_profiles_shows_the_heads_last_report_eval_until_the_head_changes(cache, monkeypatch):
    """A clean `mtp eval` with the default settings is kept beside the head and `profiles` shows
    it (before the head's own few-prompt estimate); a subset is kept but not shown as the
    default; a head written again voids what was kept of the old one."""
    import json
    import os

    from specscope.core.mtp import artifact_path
    from specscope.train.eval_record import DEFAULT_EVAL, eval_record

    folder, _ = cache
    monkeypatch.setenv("SPECSCOPE_CACHE", str(folder))

    def tiny_head_line() -> str:
        out = runner.invoke(app, ["profiles"]).stdout.splitlines()
        start = next(i for i, line in enumerate(out) if line.startswith("tiny-random"))
        return next(line for line in out[start:] if "FastMTP head" in line)

    runner.invoke(app, ["mtp", "eval", "-p", "tiny-random", "--categories", "qa", "--max-new-tokens", "6"])
    assert "mtp eval" not in tiny_head_line()  # a subset: not the default measure
    r = runner.invoke(app, ["mtp", "eval", "-p", "tiny-random", "--max-new-tokens", "128", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    acc = " ".join(f"{a:.2f}" for a in out["overall"]["acceptance"])
    line = tiny_head_line()
    assert f"mtp eval {acc} on {out['overall']['prompts']} report prompts" in line, line
    assert "its own estimate on" in line
    head = artifact_path("tiny-random")
    entries = json.loads(eval_record(head).read_text())["entries"]
    assert {DEFAULT_EVAL, "spec-bench report 2/category qa 6 tokens"} <= set(entries)
    st = head.stat()
    os.utime(head, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the head written again
    assert "mtp eval" not in tiny_head_line()


def test_a_head_goes_on_in_the_dtype_it_was_trained_in(tmp_path, monkeypatch):
    """Without --dtype the same command goes on in the head's own dtype (its cached answers and
    hidden states serve), not the profile's, which `dtype: auto` may decide otherwise later."""
    from specscope.core.mtp import artifact_path, read_meta
    from specscope.profiles import load_profile

    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path))
    other = "bfloat16" if load_profile("tiny-random").dtype != "bfloat16" else "float32"
    r = runner.invoke(app, [*TRAIN, "--dtype", other])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, TRAIN)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert f"going on in {other}, the dtype the head was trained in" in text
    assert "answers from" in text  # the first run's answers served
    assert read_meta(artifact_path("tiny-random"))[0]["training"]["dtype"] == other
    r = runner.invoke(app, [*TRAIN, "--new"])  # a new head: the profile's dtype
    assert r.exit_code == 0 and "going on in" not in r.output
