"""The vLLM, SGLang and OpenAI-compatible adapters read the answer shapes those engines document.

No such server runs here: these tests check the requests sent and the fields read against
answers written in the documented shapes (docs/remote.md), and that a row's greedy token is the
engine's. The llama.cpp adapter is tested against a real llama-server (test_llama_server.py).
"""
import math

import pytest
import torch

from specscope.core.errors import SpecScopeError
from specscope.remote import engines as E
from specscope.remote.target import make_row


def lp(p: float) -> float:
    return math.log(p)


def test_vllm_prompt_logprobs_and_generated_token():
    # prompt = [1, 2, 7, 8] (context [1, 2], draft [7, 8]); the root is position 1
    request = E.vllm_request("m", [1, 2, 7, 8], 3)
    assert request["prompt"] == [1, 2, 7, 8] and request["prompt_logprobs"] == 3
    answer = {"choices": [{
        "prompt_logprobs": [
            None,
            {"2": {"logprob": lp(.5), "rank": 1, "decoded_token": "b"}},
            {"7": {"logprob": lp(.6), "rank": 1}, "9": {"logprob": lp(.3), "rank": 2}},
            {"4": {"logprob": lp(.7), "rank": 1}, "8": {"logprob": lp(.1), "rank": 3}},
        ],
        "logprobs": {"tokens": ["token_id:5"], "top_logprobs": [{"token_id:5": lp(.9), "token_id:6": lp(.05)}]},
    }]}
    rows = E.vllm_parse(answer, start=1).rows
    assert [r.token for r in rows] == [7, 4, 5]  # root's pick, after 7, after 8
    assert rows[1].top[8] == pytest.approx(lp(.1))


def test_sglang_input_top_logprobs():
    request = E.sglang_request([1, 2, 7, 8], 1, 2)
    assert request["logprob_start_len"] == 1 and request["return_logprob"] is True
    answer = {"output_ids": [5], "meta_info": {
        "input_top_logprobs": [[[lp(.5), 2, None]], [[lp(.6), 7, None], [lp(.3), 9, None]],
                               [[lp(.7), 4, None], [lp(.2), 8, None]]],
        "output_top_logprobs": [[[lp(.9), 5, None], [lp(.05), 6, None]]],
        "e2e_latency": 0.012, "cached_tokens": 2}}
    scored = E.sglang_parse(answer)
    assert [r.token for r in scored.rows] == [7, 4, 5]
    assert scored.server_ms == pytest.approx(12.0)


def test_openai_echo_needs_token_ids():
    answer = {"choices": [{"logprobs": {
        "tokens": ["token_id:1", "token_id:2", "token_id:7", "token_id:5"],
        "top_logprobs": [None, {"token_id:2": lp(.5)}, {"token_id:7": lp(.6), "token_id:9": lp(.3)},
                         {"token_id:5": lp(.9)}]}}]}
    assert [r.token for r in E.openai_parse(answer, start=1).rows] == [7, 5]
    answer["choices"][0]["logprobs"]["top_logprobs"][2] = {"hello": lp(.6)}
    with pytest.raises(SpecScopeError, match="by text"):
        E.openai_parse(answer, start=1)


def test_a_row_keeps_the_engines_greedy_pick_and_its_probabilities():
    row = make_row(10, E.Row(3, {3: lp(.4), 1: lp(.4), 2: lp(.1)}), greedy=True)
    assert int(row.argmax()) == 3  # a tie with a lower id: the engine's pick still wins
    probs = torch.softmax(row, -1)
    assert probs[2] == pytest.approx(.1, abs=1e-6)  # the reported tokens keep their p
    assert probs[0] == pytest.approx(.1 / 7, abs=1e-6)  # the rest share what is left
    full = make_row(3, E.Row(0, {0: lp(.5), 1: lp(.3), 2: lp(.2)}), greedy=False)
    assert torch.allclose(torch.softmax(full, -1), torch.tensor([.5, .3, .2]))
    with pytest.raises(SpecScopeError, match="2 of 3 probabilities"):  # never an estimate when sampling
        make_row(3, E.Row(0, {0: lp(.5), 1: lp(.3)}), greedy=False)
    zero = make_row(3, E.Row(0, dict(E._top_dict([(0, lp(.5)), (1, lp(.5)), (2, None)]))), greedy=False)
    assert torch.softmax(zero, -1)[2] == 0  # llama.cpp's null log-probability: p = 0


def test_llamacpp_answer_without_probabilities_is_refused():
    with pytest.raises(SpecScopeError, match="log-probabilities"):
        E.llamacpp_parse({"tokens": [3], "completion_probabilities": [{"id": 3}], "timings": {}})
