"""`--backend llama.cpp` through the commands on the tiny-random profile (its pair written as
GGUF): what runs is said everywhere, greedy output is torch's own for the same weights where
the two engines agree, and what llama.cpp cannot do is refused with one line before loading.
Skipped without llama-cpp-python, except in CI."""
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specscope.cli import app
from tests.clitools import assert_clean_error, json_lines
from tests.core.llamacpp_helpers import need_binding

need_binding()

runner = CliRunner()
SAMPLE = str(Path(__file__).resolve().parent.parent / "data" / "spec_bench_sample.jsonl")


@pytest.fixture(autouse=True, scope="module")
def own_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # the tiny GGUF files land here
        mp.setenv("SPECSCOPE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def gen(*args):
    return runner.invoke(app, ["generate", "the cat sat on", "-p", "tiny-random", *args])


@pytest.fixture(scope="module")
def plain():
    return json_lines(gen("--backend", "llama.cpp", "-n", "24", "-m", "ar", "--json").stdout)[-1]


@pytest.mark.parametrize("method", ["draft", "tree", "pool", "jacobi", "lookup"])
def test_generate_on_llamacpp_says_so_and_keeps_plain_decodings_output(method, plain):
    r = gen("--backend", "llama.cpp", "-n", "24", "-m", method, "--json")
    assert r.exit_code == 0, r.output
    summary = json_lines(r.stdout)[-1]
    assert summary["backend"] == "llama.cpp" and summary["dtype"] == "gguf"
    assert (summary["quant"], summary["draft_quant"]) == ("f32", "f32")  # the GGUF's types
    assert summary["token_ids"] == plain["token_ids"] and len(plain["token_ids"]) == 24
    assert summary["kv_target_bytes"] > 0
    text = gen("--backend", "llama.cpp", "-n", "8", "-m", method)
    assert text.exit_code == 0 and "llama.cpp: target f32, drafter f32" in text.stderr


def test_a_profile_can_name_the_backend(tmp_path):
    path = tmp_path / "tiny-llama.yaml"
    path.write_text("target: tiny-random:target\ndrafter: tiny-random:draft\ndtype: float32\n"
                    "backend: llama.cpp\ndraft_len: 3\n")
    r = runner.invoke(app, ["generate", "hello", "-p", str(path), "-n", "8", "--json"])
    assert r.exit_code == 0, r.output
    assert json_lines(r.stdout)[-1]["backend"] == "llama.cpp"
    torch_run = runner.invoke(app, ["generate", "hello", "-p", "tiny-random", "-n", "8", "--json"])
    assert json_lines(torch_run.stdout)[-1]["backend"] == "torch"
    path.write_text("target: tiny-random:target\nbackend: vulkan\n")
    assert_clean_error(runner.invoke(app, ["generate", "x", "-p", str(path)]), "backend")


@pytest.mark.parametrize("args,needle", [
    (["-m", "layerskip"], "hidden states"),
    (["-m", "mtp"], "hidden states"),
    (["-m", "mtp-tree"], "hidden states"),
    (["--dtype", "bfloat16"], "as stored (f32)"),
    (["--quant", "int8"], "--quant int8"),
    (["--draft-quant", "int4"], "--draft-quant int4"),
    (["--draft-window", "64"], "--draft-window"),
    (["--device", "cuda"], "CPU"),
    (["--backend", "vulkan"], "--backend"),
])
def test_what_llamacpp_cannot_do_is_refused_in_one_line(args, needle):
    backend = [] if "--backend" in args else ["--backend", "llama.cpp"]
    assert_clean_error(gen(*backend, *args), needle)


def test_the_same_dtype_as_the_gguf_is_accepted():
    r = gen("--backend", "llama.cpp", "--dtype", "float32", "-n", "4", "--json")
    assert r.exit_code == 0, r.output


def test_a_model_that_is_not_gguf_is_refused(tmp_path):
    path = tmp_path / "hub.yaml"
    path.write_text("target: Qwen/Qwen2.5-0.5B-Instruct\nbackend: llama.cpp\n")
    assert_clean_error(runner.invoke(app, ["generate", "x", "-p", str(path)]), "GGUF")
    path.write_text(f"target: {tmp_path / 'missing.gguf'}\nbackend: llama.cpp\n")
    assert_clean_error(runner.invoke(app, ["generate", "x", "-p", str(path)]), "not found")


def test_a_gguf_whose_vocabulary_is_not_the_tokenizers_is_refused(tmp_path):
    from specscope.core.errors import SpecScopeError
    from specscope.core.gguf_write import write_gguf
    from specscope.core.llamacpp import LlamaCppLM
    from specscope.core.llamacpp_load import check_vocab
    from specscope.core.tiny import tiny_model, tiny_tokenizer
    from tests.core.llamacpp_helpers import few_token_tokenizer

    tok = tiny_tokenizer()
    lm = LlamaCppLM(write_gguf(tiny_model("draft"), tok, tmp_path / "ok.gguf"), threads=1)
    check_vocab(lm, tok, "ok")  # its own: accepted
    shuffled = few_token_tokenizer(6)
    small = LlamaCppLM(write_gguf(tiny_model("draft", vocab_size=6), shuffled, tmp_path / "six.gguf"),
                       threads=1)
    with pytest.raises(SpecScopeError, match="6 tokens, its tokenizer 1024"):
        check_vocab(small, tok, "six")
    with pytest.raises(SpecScopeError, match="not the same vocabulary"):
        check_vocab(lm, few_token_tokenizer(6), "ok")  # as many rows, other tokens


def test_a_missing_binding_is_one_line(monkeypatch):
    import sys

    import specscope.core.llamacpp as backend

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as if not installed
    monkeypatch.setattr(backend, "_log_hook", None)
    assert_clean_error(gen("--backend", "llama.cpp", "-n", "4"), "llama-cpp-python",
                       "specscope[llamacpp]")


def test_bench_on_llamacpp_says_the_backend_in_meta_and_rows(tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(app, ["bench", "-p", "tiny-random", "--prompts", SAMPLE, "--backend",
                            "llama.cpp", "--categories", "writing", "--limit", "1", "-n", "12",
                            "-m", "draft,tree", "-k", "3", "--no-plots", "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["backend"] == "llama.cpp" and data["meta"]["quant"] == "f32"
    assert {row["backend"] for row in data["results"]} == {"llama.cpp"}
    assert {row["config"] for row in data["results"]} == {"ar", "draft k=3", "tree k=3"}
    assert all(row["identical_share"] == 1.0 for row in data["results"])
    assert data["meta"]["target_bytes"] > 0 and "llama.cpp" in r.stdout
    curve = data["meta"]["verify_curve"]  # the backend's pass over 1-16 tokens, measured here
    assert (curve["backend"], curve["format"]) == ("llama.cpp", "f32")
    assert set(curve["passes"]) == {"1", "2", "4", "8", "16"} and curve["passes"]["1"] == 1.0
    ratios = [curve["passes"][r] for r in ("1", "2", "4", "8", "16")]
    assert ratios == sorted(ratios) and all(t > 0 for t in curve["pass_s"].values())
    assert "verify-cost curve, llama.cpp f32: a pass over 1, 2, 4, 8, 16 tokens" in r.stdout
    hf = runner.invoke(app, ["bench", "-p", "tiny-random", "--prompts", SAMPLE, "--backend",
                             "llama.cpp", "--reference", "hf", "--out", str(tmp_path / "x")])
    assert_clean_error(hf, "--reference hf")
