"""What each serving engine is asked, and which fields of its answer are read.

An adapter scores a *path* (context + some draft tokens) and returns one `Row` per position
asked for: the engine's greedy token there and the log-probabilities it reported (the top `n`,
or the whole vocabulary when `n` is its size). Two shapes:

- llama.cpp (`llama-server`): no prompt log-probabilities (its OpenAI `echo` is refused), so a
  position is scored by a one-token completion of the path up to it: `POST /completion`
  {prompt: [ids], n_predict: 1, temperature: 0, n_probs: n, cache_prompt: true,
  return_tokens: true}; read `tokens[0]` (its greedy token), `completion_probabilities[0]
  .top_logprobs[].{id, logprob}` (pre-sampling: the softmax of the raw logits) and `timings`
  (`prompt_ms`, `predicted_ms`, `cache_n`). Its prompt cache serves the path's prefix, so each
  request computes one token. llama-server drops the probabilities of a sampled token that ends
  inside a UTF-8 character (a byte token); such a position is asked again with that token's
  sampling forced elsewhere (`logit_bias: [[ID, 1e6]]`, ID a plain ASCII token): the
  probabilities are the raw logits' either way, and the greedy token is their argmax.
- vLLM, SGLang, OpenAI-compatible: one request scores every draft position of a path through
  prompt log-probabilities, plus the position after it through the one generated token.
  vLLM: `POST /v1/completions` {model, prompt: [ids], max_tokens: 1, temperature: 0,
  prompt_logprobs: n, logprobs: n, return_tokens_as_token_ids: true}; read
  `choices[0].prompt_logprobs[j]` ({"ID": {logprob, rank}}, rank 1 = argmax) and
  `choices[0].logprobs.top_logprobs[0]` ({"token_id:ID": logprob}), `choices[0].logprobs.tokens[0]`.
  SGLang: `POST /generate` {input_ids, sampling_params: {max_new_tokens: 1, temperature: 0},
  return_logprob: true, logprob_start_len: start, top_logprobs_num: n}; read
  `meta_info.input_top_logprobs[j]` and `meta_info.output_top_logprobs[0]` ([[logprob, id, text]]),
  `output_ids[0]` (or `meta_info.output_token_logprobs[0][1]`).
  OpenAI-compatible (`openai`): `POST /v1/completions` {model, prompt: [ids], max_tokens: 1,
  temperature: 0, echo: true, logprobs: n}; read `choices[0].logprobs.top_logprobs[j]`, whose
  keys must be token ids ("token_id:ID", vLLM's form): text keys cannot be mapped back to ids
  exactly, so such a server is refused.
These three are written from their documented answers and tested only on those shapes here
(docs/remote.md): no vLLM or SGLang server ran against them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from specscope.core.errors import SpecScopeError

ENGINES = ("llama.cpp", "vllm", "sglang", "openai")


@dataclass
class Row:
    token: int  # the engine's greedy token at this position
    top: dict[int, float]  # token id -> log-probability (the top n, or every token)


@dataclass
class Scored:
    rows: list[Row]
    server_ms: float | None = None  # the server's own compute for the request, where it says
    info: dict = field(default_factory=dict)


def _top_dict(pairs) -> dict[int, float]:
    """id -> log-probability; a null one (llama.cpp writes -inf, a zero probability, as null) is -inf."""
    return {int(i): float("-inf") if lp is None else float(lp) for i, lp in pairs}


# --- llama.cpp -------------------------------------------------------------------------------

def llamacpp_request(prefix: list[int], n_probs: int, force: int | None = None,
                     cold: bool = False) -> dict:
    """`cold`: the prompt cache is not read (the whole prefix computed in one batch, as the
    server's own completion of a prompt does); it is still written for the next request."""
    body = {"prompt": list(prefix), "n_predict": 1, "temperature": 0.0, "n_probs": n_probs,
            "post_sampling_probs": False, "cache_prompt": not cold, "return_tokens": True,
            "stream": False}
    if force is not None:  # the sampled token is forced; the probabilities stay the raw logits'
        body["logit_bias"] = [[int(force), 1e6]]
    return body


class NoProbs(SpecScopeError):
    """A llama-server answer with a token but no log-probabilities: it drops them for a token
    that ends inside a UTF-8 character (a byte token), whatever n_probs asked."""


def llamacpp_parse(answer: dict, forced: bool = False) -> Scored:
    """`forced`: the request forced its sampled token (llamacpp_request's `force`), so the
    greedy token is the most probable one reported, not the one returned."""
    probs = answer.get("completion_probabilities") or []
    tokens = answer.get("tokens") or [p.get("id") for p in probs]
    if not tokens:
        raise SpecScopeError("llama-server answered without a token (is the prompt at the end of its context?)")
    top = probs[0].get("top_logprobs") if probs else None
    if top is None:
        raise NoProbs("llama-server answered without log-probabilities (n_probs): it cannot "
                      "score drafts")
    timings = answer.get("timings") or {}
    ms = (timings.get("prompt_ms") or 0.0) + (timings.get("predicted_ms") or 0.0)
    row = Row(int(tokens[0]), _top_dict((t["id"], t["logprob"]) for t in top))
    if forced:
        row.token = max(row.top, key=row.top.get)
    return Scored([row], ms if timings else None,
                  {"prompt_n": timings.get("prompt_n"), "cache_n": timings.get("cache_n")})


# --- vLLM ------------------------------------------------------------------------------------

def vllm_request(model: str, path: list[int], n: int) -> dict:
    return {"model": model, "prompt": list(path), "max_tokens": 1, "temperature": 0.0,
            "prompt_logprobs": n, "logprobs": n, "return_tokens_as_token_ids": True}


def _token_id(key: str) -> int:
    if key.startswith("token_id:"):
        return int(key.split(":", 1)[1])
    if key.lstrip("-").isdigit():
        return int(key)
    raise SpecScopeError(f"the server names tokens by text ('{key}'), not by id: specscope "
                         "cannot map its log-probabilities back to token ids exactly")


def _generated_row(logprobs: dict) -> Row:
    tokens = logprobs.get("tokens") or []
    tops = logprobs.get("top_logprobs") or []
    if not tokens or not tops or tops[0] is None:
        raise SpecScopeError("the server answered without log-probabilities for its token")
    top = {_token_id(k): float(v) for k, v in tops[0].items()}
    return Row(_token_id(tokens[0]), top)


def vllm_parse(answer: dict, start: int) -> Scored:
    """Rows for positions start.. of the prompt (each predicting the next prompt token), then
    the generated token's."""
    choice = answer["choices"][0]
    prompt_lp = choice.get("prompt_logprobs")
    if prompt_lp is None:
        raise SpecScopeError("the server answered without prompt_logprobs: it cannot score drafts")
    rows = []
    for entry in prompt_lp[start + 1:]:  # entry j: p(token j | tokens < j)
        top = {int(k): float(v["logprob"]) for k, v in entry.items()}
        best = min(entry.items(), key=lambda kv: kv[1].get("rank", 1 << 30))
        rows.append(Row(int(best[0]), top))
    rows.append(_generated_row(choice.get("logprobs") or {}))
    return Scored(rows)


# --- SGLang ----------------------------------------------------------------------------------

def sglang_request(path: list[int], start: int, n: int) -> dict:
    return {"input_ids": list(path), "return_logprob": True, "logprob_start_len": start,
            "top_logprobs_num": n, "return_text_in_logprobs": False,
            "sampling_params": {"max_new_tokens": 1, "temperature": 0.0}}


def sglang_parse(answer: dict) -> Scored:
    """input_top_logprobs[j] is the distribution of input token start+j given the ones before;
    the first entry (start's own) is not a draft position and is skipped."""
    meta = answer.get("meta_info") or {}
    inputs, outputs = meta.get("input_top_logprobs"), meta.get("output_top_logprobs")
    if inputs is None or not outputs:
        raise SpecScopeError("the server answered without input_top_logprobs: it cannot score drafts")
    rows = []
    for entry in inputs[1:]:
        top = _top_dict((e[1], e[0]) for e in entry)
        rows.append(Row(max(top, key=top.get), top))
    out_ids = answer.get("output_ids") or [meta["output_token_logprobs"][0][1]]
    rows.append(Row(int(out_ids[0]), _top_dict((e[1], e[0]) for e in outputs[0])))
    ms = meta.get("e2e_latency")
    return Scored(rows, None if ms is None else 1000.0 * float(ms),
                  {"cached_tokens": meta.get("cached_tokens")})


# --- OpenAI-compatible (echo) ----------------------------------------------------------------

def openai_request(model: str, path: list[int], n: int) -> dict:
    return {"model": model, "prompt": list(path), "max_tokens": 1, "temperature": 0.0,
            "echo": True, "logprobs": n, "return_tokens_as_token_ids": True}


def openai_parse(answer: dict, start: int) -> Scored:
    lp = answer["choices"][0].get("logprobs") or {}
    tokens, tops = lp.get("tokens") or [], lp.get("top_logprobs")
    if not tops:
        raise SpecScopeError("the server answered without echoed log-probabilities: it cannot "
                             "score drafts")
    rows = []
    for entry in tops[start + 1:]:  # prompt positions after start, then the generated token
        top = {_token_id(k): float(v) for k, v in entry.items()}
        rows.append(Row(max(top, key=top.get), top))
    rows[-1].token = _token_id(tokens[-1])  # the generated token: the engine's own pick
    return Scored(rows)
