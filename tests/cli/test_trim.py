"""`specscope trim` on the tiny-random profile: artifact, report, round trip, refusals."""
import pytest
from typer.testing import CliRunner

from specscope.cli import app
from tests.clitools import assert_clean_error, json_lines

runner = CliRunner()
PROMPTS = "tests/data/spec_bench_sample.jsonl"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("trim") / "tiny-top300.safetensors"
    r = runner.invoke(app, ["trim", "--top-k", "300", "-p", "tiny-random", "--prompts", PROMPTS,
                            "--limit", "1", "--max-new-tokens", "24", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "coverage" in r.stdout and "r: " in r.stdout and str(out) in r.stdout.replace("\n", "")
    return out


def test_artifact_round_trips(artifact):
    from specscope.core.vocab import read_trimmed

    vocab = read_trimmed(artifact)
    assert vocab.k == 300 and vocab.head.shape == (300, 64)
    assert sorted(vocab.ranking.tolist()) == list(range(1024))
    for special in (0, 1, 2):  # <|endoftext|>, <|im_start|>, <|im_end|> always kept
        assert special in vocab.kept_ids.tolist()
    meta = vocab.meta
    assert meta["profile"] == "tiny-random" and 0 < meta["coverage"] <= 1
    assert meta["calibration"]["source"] == "generate" and meta["calibration_tokens"] > 0
    assert meta["drafter"]["source"] == "tiny-random:draft"


def test_generate_with_trimmed_head_is_exact(artifact):
    ids = {}
    for extra in ([], ["--trimmed", str(artifact)], ["--trimmed", str(artifact), "--vocab-top-k", "50"]):
        r = runner.invoke(app, ["generate", "Summarize: caches are fast.", "-p", "tiny-random",
                                "-n", "30", "--json", *extra])
        assert r.exit_code == 0, r.output
        ids[len(extra)] = json_lines(r.stdout)[-1]["token_ids"]
    r = runner.invoke(app, ["generate", "Summarize: caches are fast.", "-p", "tiny-random", "-n", "30",
                            "--json", "--method", "ar"])
    plain = json_lines(r.stdout)[-1]["token_ids"]
    assert ids[0] == ids[2] == ids[4] == plain


def test_mismatched_artifact_is_refused(artifact, tmp_path):
    other = tmp_path / "other.yaml"
    # same architecture, other weights: the drafter's seed differs
    other.write_text("target: tiny-random:target\ndrafter: tiny-random:draft\ndtype: float32\n")
    from specscope.core.vocab import read_trimmed

    vocab = read_trimmed(artifact)
    vocab.meta["drafter"]["head_sha256"] = "0" * 64
    forged = tmp_path / "forged.safetensors"
    vocab.save(forged)
    assert_clean_error(runner.invoke(app, ["generate", "x", "-p", "tiny-random", "--trimmed", str(forged)]),
                       "another drafter")
    vocab = read_trimmed(artifact)
    vocab.meta["tokenizer_sha256"] = "f" * 64
    vocab.save(forged)
    assert_clean_error(runner.invoke(app, ["generate", "x", "-p", "tiny-random", "--trimmed", str(forged)]),
                       "another vocabulary")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    assert_clean_error(runner.invoke(app, ["generate", "x", "-p", "tiny-random", "--trimmed", str(junk)]),
                       "not a specscope trimmed head")


@pytest.mark.parametrize("k,needle", [("0", "positive"), ("-5", "positive"), ("5000", "larger than")])
def test_bad_top_k(k, needle, tmp_path):
    out = tmp_path / "x.safetensors"
    r = runner.invoke(app, ["trim", "--top-k", k, "-p", "tiny-random", "--prompts", PROMPTS,
                            "--limit", "1", "--out", str(out)])
    assert_clean_error(r, needle)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_vocab_top_k_beyond_ranking_is_refused(artifact):
    r = runner.invoke(app, ["generate", "x", "-p", "tiny-random", "--trimmed", str(artifact),
                            "--vocab-top-k", "2000"])
    assert_clean_error(r, "vocab top-k")


def test_corpus_source_counts_prompt_tokens(tmp_path):
    texts = tmp_path / "corpus.txt"
    texts.write_text("the cat sat on the mat\nthe dog sat\n")
    out = tmp_path / "c.safetensors"
    r = runner.invoke(app, ["trim", "--top-k", "10", "-p", "tiny-random", "--prompts", str(texts),
                            "--source", "corpus", "--out", str(out)])
    assert r.exit_code == 0, r.output
    from collections import Counter

    from specscope.core.tiny import tiny_tokenizer
    from specscope.core.vocab import read_trimmed

    tok = tiny_tokenizer()
    counts = Counter(tok("the cat sat on the mat")["input_ids"] + tok("the dog sat")["input_ids"])
    vocab = read_trimmed(out)
    top = max(counts, key=lambda t: (counts[t], -t))
    specials = vocab.meta["always_kept"]
    assert vocab.ranking[len(specials)].item() == top
    assert vocab.meta["calibration_tokens"] == sum(counts.values())


def test_batched_calibration_counts_equal_one_by_one():
    """Left-padded batches through transformers' generate give the very answers of specscope's
    own loop, prompt by prompt, in float32 (so the counts, and the ranking, are the same)."""
    from pathlib import Path

    from specscope.profiles import load_profile
    from specscope.prompts import load_prompts
    from specscope.session import load_session
    from specscope.trim import count_generated, count_generated_one_by_one, greedy_batch

    session = load_session(load_profile("tiny-random"))
    prompts = load_prompts(Path(PROMPTS), None, 1, from_end=True)
    assert len({len(session.encode(p.text)) for p in prompts}) > 1  # padding is exercised
    one = count_generated_one_by_one(session, prompts, 16, lambda *a: None)
    steps = []
    batched = count_generated(session, prompts, 16, lambda *a: None, batch_size=5, on_step=steps.append)
    assert batched == one and sum(one.values()) > 0
    assert steps and len(steps) <= 3 * 16  # three batches, at most 16 steps each
    ids = [session.encode(p.text) for p in prompts[:4]]
    answers = greedy_batch(session, ids, 16)
    for prompt, answer in zip(ids, answers):
        controls = session.controls(method="ar", temperature=0.0, max_new_tokens=16)
        assert list(list(session.decoder.run(prompt, controls))[-1].summary.token_ids) == answer


def test_bad_batch_size(tmp_path):
    r = runner.invoke(app, ["trim", "--top-k", "10", "-p", "tiny-random", "--prompts", PROMPTS,
                            "--batch-size", "0", "--out", str(tmp_path / "x.safetensors")])
    assert_clean_error(r, "--batch-size")
