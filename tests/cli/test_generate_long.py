"""`generate --prompt-file` with a prompt long enough to be read in chunks: progress on stderr,
Prefilling events in --json, the same answer as the prompt given inline."""
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specscope.cli import app
from tests.clitools import assert_clean_error, json_lines, write

runner = CliRunner()
CORPUS = Path(__file__).resolve().parents[2] / "specscope" / "data" / "tiny_corpus.txt"
LONG = " ".join(CORPUS.read_text().split("\n")[:15])  # ~1,000 tiny-random tokens: 2 chunks


def gen(*args, input=None):
    return runner.invoke(app, ["generate", "-p", "tiny-random", "-n", "6", "-m", "draft", "-k", "3",
                               *args], input=input)


@pytest.fixture(scope="module")
def long_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompt") / "long.txt"
    path.write_text(LONG)
    r = gen("--prompt-file", str(path), "--json")
    assert r.exit_code == 0, r.output
    return r


def test_json_carries_the_prefill_progress_of_both_models(long_json):
    events = json_lines(long_json.stdout)
    kinds = [e["kind"] for e in events]
    started, drafted = kinds.index("started"), kinds.index("drafted")
    target = events[:started]
    draft = [e for e in events[started:drafted] if e["kind"] == "prefilling"]
    assert target and all(e["kind"] == "prefilling" and e["model"] == "target" for e in target)
    assert draft and all(e["model"] == "draft" for e in draft)
    for series in (target, draft):
        done = [e["done"] for e in series]
        assert done[0] == 0 and done == sorted(done) and done[-1] == series[-1]["total"] > 512
    assert events[started]["prompt_tokens"] == target[-1]["total"] + 1
    assert kinds[-1] == "finished" and len(events[-1]["token_ids"]) == 6


def test_progress_lines_on_stderr_without_a_terminal(long_json):
    err = long_json.stderr
    assert "reading the prompt (target)" in err and "reading the prompt (drafter)" in err
    assert err.count("done") == 2  # one closing line per model


def test_prompt_file_and_stdin_give_the_inline_answer(tmp_path, long_json):
    want = json_lines(long_json.stdout)[-1]["token_ids"]
    inline = gen(LONG, "--json")
    piped = gen("--prompt-file", "-", "--json", input=LONG)
    for r in (inline, piped):
        assert r.exit_code == 0, r.output
        assert json_lines(r.stdout)[-1]["token_ids"] == want
    text = gen("-f", write(tmp_path, "p.txt", LONG))  # coloured text mode: the answer on stdout
    assert text.exit_code == 0, text.output
    assert "reading the prompt" in text.stderr and "reading the prompt" not in text.stdout


def test_short_prompts_show_no_progress():
    r = gen("def quicksort(arr):", "--json")
    assert r.exit_code == 0, r.output
    assert "prefilling" not in {e["kind"] for e in json_lines(r.stdout)}
    assert "reading the prompt" not in r.stderr


@pytest.mark.parametrize("args, needle", [
    ((), "no prompt"),
    (("hello", "--prompt-file", "x.txt"), "not both"),
    (("--prompt-file", "/no/such/file.txt"), "prompt file not found"),
    (("--prompt-file", "/"), "is a folder"),
])
def test_bad_prompt_sources_fail_before_loading(args, needle):
    assert_clean_error(gen(*args), needle)
