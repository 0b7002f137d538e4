"""`--target-url`, `--engine`, `--api-key` on the commands, and `bench --reference llama.cpp`."""
import json

from typer.testing import CliRunner

from specscope.cli.app import app
from tests.clitools import assert_clean_error, json_lines
from tests.remote.conftest import needs_llama_server

runner = CliRunner()
SECRET = "sk-test-never-shown-1234"


def generate(*args):
    return runner.invoke(app, ["generate", "--profile", "tiny-random", *args])


def test_unreachable_server_is_one_line_and_hides_the_key():
    r = generate("hi", "--target-url", "http://127.0.0.1:9", "--api-key", SECRET, "--json")
    assert_clean_error(r, "not reachable", "127.0.0.1:9")
    assert SECRET not in r.output


def test_bad_remote_options_are_one_line():
    assert_clean_error(generate("hi", "--target-url", "localhost:8080"), "--target-url")
    assert_clean_error(generate("hi", "--target-url", "http://127.0.0.1:9", "--engine", "tgi"), "--engine")
    assert_clean_error(generate("hi", "--engine", "vllm"), "--engine needs a served target")
    assert_clean_error(runner.invoke(app, ["bench", "--profile", "tiny-random", "--reference", "tgi"]),
                       "unknown reference")
    assert_clean_error(runner.invoke(app, ["bench", "--profile", "tiny-random", "--reference",
                                           "llama.cpp,http://127.0.0.1:9"]), "one engine")


@needs_llama_server
def test_generate_against_a_served_target(tiny_server):
    r = generate("Write a function.", "--target-url", tiny_server.url, "-k", "4", "-n", "16",
                 "--json", "--api-key", SECRET)
    assert r.exit_code == 0, r.output
    assert SECRET not in r.output
    summary = json_lines(r.stdout)[-1]
    assert summary["kind"] == "finished" and summary["new_tokens"] == 16
    assert summary["requests"] >= summary["steps"] and summary["server_s"] > 0
    plain = generate("Write a function.", "--target-url", tiny_server.url, "-m", "ar", "-n", "16", "--json")
    assert json_lines(plain.stdout)[-1]["token_ids"] == summary["token_ids"]
    r = generate("Write a function.", "--target-url", tiny_server.url, "-m", "layerskip")
    assert_clean_error(r, "hidden states")


@needs_llama_server
def test_bench_reference_llamacpp_rows_parse_the_servers_output(tmp_path):
    """llama.cpp's plain and speculative rows from real llama-servers on the tiny GGUF pair."""
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"question_id": i, "category": c, "turns": [t]}) + "\n"
                               for i, (c, t) in enumerate([("coding", "Write a sort."),
                                                           ("qa", "Why is the sky blue?")])))
    out = tmp_path / "out"
    r = runner.invoke(app, ["bench", "--profile", "tiny-random", "--prompts", str(prompts), "-m", "draft",
                            "-k", "3", "-n", "12", "--reference", "hf,llama.cpp", "--out", str(out),
                            "--no-plots", "--no-warmup"])
    assert r.exit_code == 0, r.output
    results = json.loads((out / "results.json").read_text())
    rows = {(x["config"], x["category"]): x for x in results["results"]}
    plain, spec = rows[("llama.cpp-plain", "overall")], rows[("llama.cpp-draft k=3", "overall")]
    assert plain["tau"] == 1.0 and plain["server_tokens_per_s"] > 0
    assert spec["acceptance_rate"] is not None and spec["mean_draft_len"] > 0
    assert spec["own_speedup"] > 0 and plain["own_speedup"] == 1.0
    # llama.cpp's greedy output is specscope's: the same weights, prompt ids and budget
    assert plain["identical_share"] == 1.0 and spec["identical_share"] == 1.0
    assert results["meta"]["engine_reference"]["reference"] == "llama.cpp"
    # llama.cpp's verify-cost curve, from its own llama-bench on the same target GGUF
    curve = results["meta"]["engine_reference"]["verify_curve"]
    assert list(curve) == ["1", "2", "4", "8", "16"] and curve["1"] == 1.0 and curve["16"] > 0
    assert "verify-cost curve" in r.stdout
    assert "llama.cpp-draft k=3" in r.stdout
    assert rows[("hf-plain", "overall")]["identical_share"] == 1.0  # transformers' rows beside them


@needs_llama_server
def test_a_keyed_server_gets_the_key_and_nothing_records_it(tiny_ggufs, tmp_path, monkeypatch):
    """llama-server started with --api-key: without the key one line; with it, bench runs and
    neither its output nor any file it writes holds the key."""
    from specscope.remote.llama_server import LlamaServer
    from tests.remote.conftest import SERVER_ARGS

    monkeypatch.delenv("SPECSCOPE_API_KEY", raising=False)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"question_id": 0, "category": "qa", "turns": ["Why?"]}) + "\n")
    with LlamaServer(tiny_ggufs[0], args=SERVER_ARGS + ["--api-key", SECRET]) as server:
        assert_clean_error(generate("hi", "--target-url", server.url, "-n", "4"), "API key")
        out = tmp_path / "out"
        r = runner.invoke(app, ["bench", "--profile", "tiny-random", "--target-url", server.url,
                                "--api-key", SECRET, "--prompts", str(prompts), "-m", "draft",
                                "-k", "3", "-n", "8", "--out", str(out), "--no-plots", "--no-warmup"])
        monkeypatch.delenv("SPECSCOPE_API_KEY", raising=False)  # the option put it there
        assert r.exit_code == 0, r.output
    assert SECRET not in r.output
    files = list(out.iterdir())
    assert files and not [f.name for f in files if SECRET in f.read_text(errors="replace")]
    assert json.loads((out / "results.json").read_text())["meta"]["target"] == server.url
