"""Options that can be judged without weights are refused before any model loads.

Every test here runs with the model loaders replaced by a function that fails the test: an error
that only appears after loading (or a load that happens at all) shows up as an AssertionError,
not as the clean one-line refusal the test expects.
"""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from specscope.cli import app
from tests.clitools import assert_clean_error, write

runner = CliRunner()
SAMPLE = str(Path(__file__).resolve().parent.parent / "data" / "spec_bench_sample.jsonl")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_model_loads(monkeypatch):
    def loaded(*args, **kwargs):
        raise AssertionError(f"a model was loaded: {args}")

    for target in ("specscope.core.models.load_causal_lm", "specscope.session.load_causal_lm",
                   "specscope.core.models.load_tokenizer", "specscope.session.load_tokenizer",
                   "specscope.core.models.ensure_embedded", "specscope.core.embedded.ensure_embedded"):
        monkeypatch.setattr(target, loaded)


def cli(*args):
    return runner.invoke(app, list(args))


def artifact(tmp_path, rows=1024, k=10, name="head.safetensors"):
    """A VocabTrim artifact of the tiny drafter's shape, written without loading any model."""
    from specscope.core.vocab import FORMAT, TrimmedVocab

    meta = {"format": FORMAT, "k": k, "profile": "tiny-random"}
    path = tmp_path / name
    TrimmedVocab(torch.arange(rows), k, torch.zeros(k, 64), meta).save(path)
    return str(path)


# --- trim ---------------------------------------------------------------------------------

def test_trim_top_k_beyond_the_vocabulary_names_its_size(tmp_path):
    out = tmp_path / "x.safetensors"
    assert_clean_error(cli("trim", "--top-k", "500000", "-p", "tiny-random", "--out", str(out)),
                       "larger than the drafter's vocabulary", "1024")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where, needle", [
    ("/proc/nope/x.safetensors", "cannot write"),
    ("{file}/x.safetensors", "cannot write"),
    ("{tmp}", "is a directory"),
])
def test_trim_output_that_cannot_be_written(tmp_path, where, needle):
    blocker = write(tmp_path, "a-file", "x")
    out = where.format(file=blocker, tmp=tmp_path)
    r = cli("trim", "--top-k", "100", "-p", "tiny-random", "--out", out)  # default prompts
    assert_clean_error(r, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_trim_answer_length_beyond_the_context_window(tmp_path):
    assert_clean_error(cli("trim", "--top-k", "100", "-p", "tiny-random", "--max-new-tokens",
                           "5000", "--out", str(tmp_path / "x.safetensors")),
                       "context window is 2048")


def test_trim_profile_without_drafter(tmp_path):
    prof = write(tmp_path, "solo.yaml", "target: tiny-random:target\n")
    assert_clean_error(cli("trim", "--top-k", "10", "-p", prof), "no drafter")


# --- generate -------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, needles", [
    (["-n", "10000000"], ["10000000", "context window is 2048", "at most 2047"]),
    (["--trimmed", "/nope/missing.safetensors"], ["trimmed head not found"]),
    (["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "tpu"], ["--device"]),
    (["--draft-window", "-1"], ["draft window must be >= 0", "-1"]),
])
def test_generate_refuses_before_loading(extra, needles):
    r = cli("generate", "x", "-p", "tiny-random", *extra)
    assert_clean_error(r, *needles)


def test_generate_checks_the_artifact_header(tmp_path):
    junk = write(tmp_path, "junk.safetensors", "not a safetensors file")
    assert_clean_error(cli("generate", "x", "-p", "tiny-random", "--trimmed", junk),
                       "not a specscope trimmed head")
    good = artifact(tmp_path)
    assert_clean_error(cli("generate", "x", "-p", "tiny-random", "--trimmed", good,
                           "--vocab-top-k", "2000"), "vocab top-k must be between 1 and 1024")
    other = artifact(tmp_path, rows=500, name="other.safetensors")
    assert_clean_error(cli("generate", "x", "-p", "tiny-random", "--trimmed", other),
                       "made for another drafter", "500")


def test_a_valid_artifact_passes_the_checks_and_then_loading_starts(tmp_path):
    """The checks do not refuse good input: with a good artifact the run reaches the loader."""
    r = cli("generate", "x", "-p", "tiny-random", "--trimmed", artifact(tmp_path), "--vocab-top-k", "20")
    assert isinstance(r.exception, AssertionError) and "a model was loaded" in str(r.exception)


def test_embedded_pair_needs_a_writable_cache_to_convert_into(tmp_path, monkeypatch):
    blocker = write(tmp_path, "a-file", "x")
    monkeypatch.setenv("SPECSCOPE_CACHE", str(Path(blocker) / "cache"))
    assert_clean_error(cli("generate", "x", "-p", "qwen2.5-coder"), "cannot write to the model cache")


# --- bench, layerskip-search ----------------------------------------------------------------

@pytest.mark.parametrize("extra, needle", [
    (["-n", "10000000"], "context window is 2048"),
    (["--trimmed", "/nope/missing.safetensors"], "trimmed head not found"),
    (["--out", "/proc/nope/out"], "cannot write to output directory"),
    (["--draft-window", "-8"], "draft window must be >= 0"),
])
def test_bench_refuses_before_loading(tmp_path, extra, needle):
    args = ["bench", "-p", "tiny-random", "--prompts", SAMPLE, *extra]
    if "--out" not in extra:
        args += ["--out", str(tmp_path / "out")]
    assert_clean_error(cli(*args), needle)
    assert list(tmp_path.iterdir()) == []


def test_bench_vocabulary_sizes_against_the_artifact(tmp_path):
    good = artifact(tmp_path)
    assert_clean_error(cli("bench", "-p", "tiny-random", "--prompts", SAMPLE, "--trimmed", good,
                           "--vocab-top-k", "50,5000", "--out", str(tmp_path / "out")),
                       "between 1 and 1024", "5000")


def test_layerskip_search_refuses_before_loading(tmp_path, monkeypatch):
    assert_clean_error(cli("layerskip-search", "-p", "tiny-random", "--new-tokens", "4096"),
                       "--new-tokens 4096", "context window")
    blocker = write(tmp_path, "a-file", "x")
    monkeypatch.setenv("SPECSCOPE_CACHE", str(Path(blocker) / "cache"))
    assert_clean_error(cli("layerskip-search", "-p", "tiny-random"), "cannot write to the layer-skip cache")


# --- chat -----------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, needle", [
    (["--trimmed", "/nope.safetensors"], "trimmed head not found"),
    (["-n", "10000000"], "context window"),
    (["--draft-window", "-2"], "draft window must be >= 0"),
    (["-p", "tiny-random"], "needs a terminal"),  # CliRunner's streams are not terminals
])
def test_chat_refuses_with_one_line(extra, needle):
    args = ["chat", *extra] if "-p" in extra else ["chat", "-p", "tiny-random", *extra]
    assert_clean_error(cli(*args), needle)


def test_chat_without_a_terminal_exits_at_once(tmp_path):
    """As a user would start it: stdin from /dev/null, stdout to a file. Before, it spun forever."""
    log = tmp_path / "log"
    with open(log, "w") as stdout:
        r = subprocess.run([sys.executable, "-m", "specscope", "chat", "-p", "tiny-random"],
                           stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                           text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "needs a terminal" in lines[0]
    assert log.read_text() == ""
