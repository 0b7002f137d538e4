"""specscope against a real llama-server (started here, on a GGUF written here): the served
target's greedy output is the server's own greedy completion, rollback goes through its prompt
cache, sampling gets the full distribution, and bad servers are one clear error."""
import os

import pytest
import torch

from specscope.core.errors import SpecScopeError
from specscope.remote import engines as E
from specscope.remote.connect import connect
from specscope.remote.http import HttpClient
from specscope.remote.llama_server import LlamaServer
from tests.remote.conftest import SERVER_ARGS, needs_llama_server, remote_profile

pytestmark = needs_llama_server
PROMPT = "Write a function that adds two numbers."


def server_greedy(url: str, ids: list[int], n: int) -> list[int]:
    """The server's own greedy completion (its plain decoding), a fresh prompt cache."""
    answer = HttpClient(url).post("/completion", {
        "prompt": ids, "n_predict": n, "temperature": 0.0, "cache_prompt": False,
        "return_tokens": True, "ignore_eos": True})
    return answer["tokens"]


@pytest.fixture(scope="module")
def remote(tiny_server):
    from specscope.session import load_session

    return load_session(remote_profile(tiny_server.url))


def test_greedy_is_the_servers_own_greedy_completion(remote, tiny_server):
    ids = remote.encode(PROMPT)
    expected = server_greedy(tiny_server.url, ids, 40)
    for method, k in (("draft", 4), ("draft", 6), ("lookup", 3), ("tree", 4), ("pool", 4),
                      ("jacobi", 4), ("ar", 0)):
        remote.decoder.reset()
        controls = remote.controls(method=method, draft_len=k, max_new_tokens=40)
        controls.stop = None
        events = list(remote.decoder.run(ids, controls))
        summary = events[-1].summary
        steps = [e for e in events if e.kind == "verified"]
        assert list(summary.token_ids) == expected[:len(summary.token_ids)], method
        assert len(summary.token_ids) == 40 or summary.stop_reason == "eos"
        # each step costs the accepted tokens + 1 one-token requests, and reports the server's time
        # (one more where a byte token is re-asked: engines.NoProbs)
        assert all(s.requests >= s.n_accepted + sum(s.dropped) + 1 for s in steps)
        assert all(s.server_s is not None and 0 < s.server_s <= s.verify_s for s in steps)
        if method == "draft":  # drafts 3+ deep, some accepted, some rejected
            drafted = [e for e in events if e.kind == "drafted"]
            assert max(len(d.tokens) for d in drafted) >= 3
            assert 0 < summary.accepted < summary.drafted


def test_rollback_through_the_prompt_cache(remote, tiny_server):
    """Sampling scores every draft position, so the server computes a draft's rejected tail; the
    next step's context (the accepted prefix and the target's own token) reuses the cached
    prefix and drops the tail: one token computed, the rows those of a cold pass."""
    target = remote.target
    ids = remote.encode("Count from one to ten.")
    right = server_greedy(tiny_server.url, ids, 4)
    wrong = (right[1] + 1) % target.vocab_size
    remote.decoder.reset()
    target.score(ids, [right[0], wrong, 7], [-1, 0, 1], greedy=False)  # every position: 4 requests
    assert target.last_requests == 4 + target.last_reasks
    assert target.last_cache_n[0] == 0 and target.last_cache_n[-1] == len(ids) + 2
    grown = ids + right[:2]  # `wrong` rejected, the target's right[1] instead
    warm = target.score(grown, [right[2]], [-1], greedy=True)
    assert target.last_cache_n[0] == len(ids) + 1  # ids and right[0] from the cache; wrong, 7 dropped
    assert [int(r.argmax()) for r in warm] == right[2:4]
    remote.decoder.reset()
    cold = target.score(grown, [right[2]], [-1], greedy=True)
    assert target.last_cache_n[0] == 0
    assert torch.allclose(warm, cold, atol=1e-4)


def test_sampling_rows_are_the_full_distribution(remote, tiny_session):
    """With temperature > 0 every row is the server's whole distribution (n_probs = vocabulary
    size): it matches the torch model with the same weights, and sums to 1."""
    ids = remote.encode("Tell me a story.")
    rows = remote.target.score(ids, [5, 9], [-1, 0], greedy=False)
    assert not torch.isnan(rows).any()
    probs = rows.exp()
    assert torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-4)
    local = tiny_session.target
    local.reset()
    want = torch.softmax(local.logits(local.forward(ids + [5, 9], 3)), -1)
    assert torch.allclose(probs, want, atol=2e-4)
    remote.decoder.reset()
    controls = remote.controls(method="draft", draft_len=3, max_new_tokens=8, temperature=0.8, seed=1)
    summary = list(remote.decoder.run(ids, controls))[-1].summary
    assert summary.new_tokens == 8 and summary.requests >= summary.steps


def test_hidden_state_methods_are_refused(remote):
    with pytest.raises(SpecScopeError, match="hidden states"):
        remote.decoder.drafter("layerskip")


def test_dead_server_is_one_clear_error(tiny_ggufs, tiny_session):
    server = LlamaServer(tiny_ggufs[0], args=SERVER_ARGS).start()
    url, pid = server.url, server.pid
    server.stop()
    with pytest.raises(OSError):
        os.kill(pid, 0)  # gone, and reaped
    with pytest.raises(SpecScopeError, match="not reachable"):
        connect(url, "llama.cpp", tiny_session.tokenizer, timeout=2)


def test_server_dying_mid_run_is_one_clear_error(tiny_ggufs, tiny_session):
    with LlamaServer(tiny_ggufs[0], args=SERVER_ARGS) as server:
        target = connect(server.url, "llama.cpp", tiny_session.tokenizer, timeout=2)
        target.score([1, 2, 3], [], [], greedy=True)
        server.stop()
        with pytest.raises(SpecScopeError, match="cannot reach"):
            target.score([1, 2, 3, 4], [], [], greedy=True)


def test_wrong_model_is_one_clear_error(tmp_path, tiny_session):
    """A server whose model has another tokenizer (512 tokens, not 1024) is refused at connect."""
    from specscope.core.gguf_write import write_gguf
    from specscope.core.tiny import tiny_model, tiny_tokenizer

    other = write_gguf(tiny_model("target", vocab_size=512), tiny_tokenizer(512), tmp_path / "other.gguf")
    with LlamaServer(other, args=SERVER_ARGS) as server:
        with pytest.raises(SpecScopeError, match="tokenizer mismatch"):
            connect(server.url, "llama.cpp", tiny_session.tokenizer)
        with pytest.raises(SpecScopeError, match="serves"):
            connect(server.url, "llama.cpp", tiny_session.tokenizer, model="qwen2.5-coder-1.5b")


def test_no_process_is_left(tiny_ggufs):
    with LlamaServer(tiny_ggufs[0], args=SERVER_ARGS) as server:
        pid = server.pid
        assert HttpClient(server.url).get("/health")["status"] == "ok"
    with pytest.raises(OSError):
        os.kill(pid, 0)
    with pytest.raises(SpecScopeError, match="exited"):  # a bad model file: the log's reason
        bad = tiny_ggufs[0].with_name("bad.gguf")
        bad.write_bytes(b"GGUF not really")
        LlamaServer(bad, args=SERVER_ARGS).start()


def test_byte_tokens_are_scored(remote, tiny_server):
    """llama-server returns no log-probabilities for a sampled token that ends inside a UTF-8
    character; such a position is asked again with a whole character forced, and its row is the
    same raw distribution, its argmax the server's greedy token."""
    ids = remote.encode(PROMPT)
    expected = server_greedy(tiny_server.url, ids, 40)
    client = HttpClient(tiny_server.url)
    at = [i for i in range(40) if not client.post("/completion", E.llamacpp_request(
        ids + expected[:i], 5)).get("completion_probabilities")]
    assert at, "the seeded tiny model's greedy text has a byte token (the case under test)"
    prefix, token = ids + expected[:at[0]], expected[at[0]]
    target = remote.target
    row = target.score(prefix, [], [], greedy=True)[0]
    assert target.last_reasks == 1 and int(row.argmax()) == token
    full = target.score(prefix, [], [], greedy=False)[0].exp()
    assert int(full.argmax()) == token and abs(float(full.sum()) - 1) < 1e-4


def test_a_new_context_is_read_cold(remote, tiny_server):
    """The first request of a new context does not read the prompt cache (the whole prompt in
    one batch, as the server's own completion reads it: re-reading the cached last token alone
    is a pass of another batch size, which flipped a near tie on the embedded Q4_K target);
    the requests that grow it do."""
    target = remote.target
    ids = remote.encode("Name three colours.")
    right = server_greedy(tiny_server.url, ids, 3)  # the slot now caches ids + 3 tokens
    remote.decoder.reset()
    target.score(ids, right[:2], [-1, 0], greedy=True)
    assert target.last_cache_n[0] == 0  # cold, though all of ids was cached
    assert target.last_cache_n[1:] == [len(ids) + i for i in range(len(target.last_cache_n) - 1)]
    target.score(ids + right[:1], [], [], greedy=True)  # the same context grown: warm
    assert target.last_cache_n[0] >= len(ids)
