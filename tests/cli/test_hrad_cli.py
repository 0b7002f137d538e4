"""`specscope hrad train` on the tiny pair, then `--draft-len learned` in generate and bench;
refusals with one line: no predictor, a corrupt one, one trained for another pair, a method
without a draft model."""
import pytest
from typer.testing import CliRunner

from specscope.cli import app
from tests.clitools import assert_clean_error, json_lines

runner = CliRunner()
TRAIN = ["hrad", "train", "-p", "tiny-random", "--limit", "1", "--held", "1",
         "--max-new-tokens", "12", "--seconds", "0.5"]
GEN = ["generate", "Write a haiku about the sea.", "-p", "tiny-random", "-n", "16", "--json"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPECSCOPE_CACHE", str(folder))
        r = runner.invoke(app, TRAIN)
    assert r.exit_code == 0, r.output
    return folder, r


def test_train_writes_a_predictor_with_its_estimate(cache):
    from specscope.core.hrad import read_meta

    folder, r = cache
    meta = read_meta(folder / "hrad" / "tiny-random.safetensors")[0]
    training = meta["training"]
    assert meta["target"]["source"] and meta["drafter"]["source"] and meta["tokenizer_sha256"]
    est = training["estimate"]
    assert est["examples"] > 0 and 0.0 <= est["accuracy"] <= 1.0 and len(est["label_share"]) == 7
    assert not set(training["used_prompts"]["ids"]) & set(training["estimate_prompts"]["ids"])
    assert "held-apart estimate" in r.stdout and "-k learned" in r.stdout


def test_generate_with_learned_lengths_matches_plain(cache, monkeypatch):
    folder, _ = cache
    monkeypatch.setenv("SPECSCOPE_CACHE", str(folder))
    plain = runner.invoke(app, GEN + ["-m", "ar"])
    learned = runner.invoke(app, GEN + ["-m", "draft", "-k", "learned"])
    assert plain.exit_code == 0 and learned.exit_code == 0, learned.output
    assert json_lines(learned.stdout)[-1]["text"] == json_lines(plain.stdout)[-1]["text"]


def test_refusals(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path))
    r = runner.invoke(app, GEN + ["-m", "draft", "-k", "learned"])
    assert_clean_error(r, "no trained draft-length predictor", "specscope hrad train -p tiny-random")
    (tmp_path / "hrad").mkdir()
    (tmp_path / "hrad" / "tiny-random.safetensors").write_bytes(b"not a safetensors file")
    r = runner.invoke(app, GEN + ["-m", "draft", "-k", "learned"])
    assert_clean_error(r, "not a specscope draft-length predictor")
    folder, _ = cache
    monkeypatch.setenv("SPECSCOPE_CACHE", str(folder))
    r = runner.invoke(app, GEN + ["-m", "lookup", "-k", "learned"])
    assert_clean_error(r, "--draft-len learned sizes a draft model's drafts")
