"""`bench --reference URL` on a vLLM or SGLang server: its own (speculative) decoding of the
prompt, and its acceptance counts, as one bench run (engine_ref.py does llama.cpp's).

Which engine: llama.cpp answers `GET /props`; SGLang `GET /get_server_info` (or `/server_info`);
otherwise the server is taken as vLLM (OpenAI-compatible, Prometheus `/metrics`).

vLLM: `POST /v1/completions` {model, prompt: [ids], max_tokens: N, temperature: 0,
return_token_ids: true}; read `choices[0].token_ids` (the generated ids; without them the row
has no `identical` check), `choices[0].finish_reason`, `usage.completion_tokens`. Its
acceptance comes from the Prometheus counters read before and after the request (bench sends
one request at a time, so the difference is this request's, if nobody else uses the server):
`vllm:spec_decode_num_drafts_total` (steps that drafted), `vllm:spec_decode_num_draft_tokens_total`,
`vllm:spec_decode_num_accepted_tokens_total` and
`vllm:spec_decode_num_accepted_tokens_per_pos_total{position="i"}` (per draft position).

SGLang: `POST /generate` {input_ids: [ids], sampling_params: {max_new_tokens: N, temperature:
0}}; read `output_ids`, `meta_info.{completion_tokens, spec_verify_ct, e2e_latency,
finish_reason}` and, where the version reports them, `meta_info.spec_draft_token_num` (drafted
tokens; else acceptance is unknown and only tau is given). A verification emits its accepted
tokens and one of the target's, so steps = `spec_verify_ct` and accepted = completion_tokens -
spec_verify_ct.

Written from the engines' documented answers; tests/remote/test_engine_served.py checks them on
answers in those shapes (no vLLM or SGLang server ran here).
"""
from __future__ import annotations

import re
import time

from specscope.bench.measured import Measured
from specscope.core.errors import SpecScopeError

VLLM_PREFIX = "vllm:spec_decode_num_"
_SAMPLE = re.compile(r'^([A-Za-z_:][\w:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)')
_POSITION = re.compile(r'position="(\d+)"')


def detect_engine(client) -> str:
    """llama.cpp, sglang or vllm: what answers at the server's URL."""
    from specscope.remote.http import RemoteError

    for path, engine in (("/props", "llama.cpp"), ("/get_server_info", "sglang"), ("/server_info", "sglang")):
        try:
            client.request("GET", path, retries=0)
            return engine
        except RemoteError as e:
            if "answered" not in str(e):  # not an HTTP answer at all: the server is not there
                raise SpecScopeError(f"the reference server is not reachable: {e}") from None
    return "vllm"


def prometheus_counters(text: str) -> dict[tuple[str, int | None], float]:
    """vLLM's speculative-decoding counters from a /metrics page: {(name, position): value},
    summed over the other labels (engines, models)."""
    out: dict[tuple[str, int | None], float] = {}
    for line in text.splitlines():
        if not line.startswith(VLLM_PREFIX):
            continue
        m = _SAMPLE.match(line)
        if m is None or not m.group(1).endswith("_total"):
            continue  # _created samples, comments
        pos = _POSITION.search(m.group(2) or "")
        key = (m.group(1), int(pos.group(1)) if pos else None)
        out[key] = out.get(key, 0.0) + float(m.group(3))
    return out


def _cut(tokens: list[int], eos: set[int]) -> list[int]:
    for i, t in enumerate(tokens):
        if t in eos:
            return tokens[:i + 1]
    return tokens


def vllm_measure(client, model: str, ids: list[int], n: int, eos: set[int]) -> Measured:
    before = prometheus_counters(client.text("/metrics"))
    body = {"model": model, "prompt": list(ids), "max_tokens": n, "temperature": 0.0,
            "return_token_ids": True}
    t0 = time.perf_counter()
    answer = client.post("/v1/completions", body, idempotent=False)
    wall = time.perf_counter() - t0
    after = prometheus_counters(client.text("/metrics"))
    return vllm_parse(answer, before, after, wall, eos)


def vllm_parse(answer: dict, before: dict, after: dict, wall_s: float, eos: set[int]) -> Measured:
    def delta(name: str, pos: int | None = None) -> float:
        key = (f"{VLLM_PREFIX}{name}_total", pos)
        return after.get(key, 0.0) - before.get(key, 0.0)

    choice = answer["choices"][0]
    tokens = _cut(list(choice.get("token_ids") or []), eos)
    n = int((answer.get("usage") or {}).get("completion_tokens") or len(tokens))
    drafts, drafted = int(delta("drafts")), int(delta("draft_tokens"))
    accepted = int(delta("accepted_tokens"))
    positions = sorted(p for (name, p) in after if p is not None and name.endswith("per_pos_total"))
    pos_accepted = [int(delta("accepted_tokens_per_pos", p)) for p in positions]
    k = drafted // drafts if drafts else 0  # tokens a draft proposes (vLLM's num_speculative_tokens)
    stop = "eos" if choice.get("finish_reason") == "stop" else "max_new_tokens"
    return Measured(tokens, wall_s, max(n - accepted, 1), drafted, accepted,
                    [drafts] * min(k, len(pos_accepted)), pos_accepted[:k], 0.0, stop)


def sglang_measure(client, ids: list[int], n: int, eos: set[int]) -> Measured:
    body = {"input_ids": list(ids), "sampling_params": {"max_new_tokens": n, "temperature": 0.0}}
    t0 = time.perf_counter()
    answer = client.post("/generate", body, idempotent=False)
    return sglang_parse(answer, time.perf_counter() - t0, eos)


def sglang_parse(answer: dict, wall_s: float, eos: set[int]) -> Measured:
    meta = answer.get("meta_info") or {}
    if "completion_tokens" not in meta:
        raise SpecScopeError("the server answered without meta_info.completion_tokens: not SGLang?")
    tokens = _cut(list(answer.get("output_ids") or []), eos)
    n = int(meta["completion_tokens"])
    steps = int(meta.get("spec_verify_ct") or n)  # no speculation: one step a token
    drafted = meta.get("spec_draft_token_num")
    finish = meta.get("finish_reason") or {}
    stop = "eos" if (finish.get("type") if isinstance(finish, dict) else finish) == "stop" else "max_new_tokens"
    latency = meta.get("e2e_latency")
    return Measured(tokens, wall_s, max(steps, 1), None if drafted is None else int(drafted),
                    n - steps, [], [], 0.0, stop,
                    server_tokens_per_s=n / latency if latency else None)
