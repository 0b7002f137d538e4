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
