"""Connect to a served target and check it is the model the profile's tokenizer belongs to.

At connect time: the server answers (one line if not), names its model (an expected `model`
must match), and its tokenizer splits a probe text into the same ids as the profile's tokenizer
(one line naming the first difference if not); its vocabulary size gives the rows of a logits row.
"""
from __future__ import annotations

from specscope.core.errors import SpecScopeError
from specscope.remote.engines import ENGINES
from specscope.remote.http import HttpClient, RemoteError, is_url  # noqa: F401 (re-exported)
from specscope.remote.target import RemoteLM

PROBE = "def mean(xs):\n    return sum(xs) / len(xs)  # Ünïcode, 数字 123, \"quotes\"\tand tabs."


def _models(client: HttpClient) -> list[dict]:
    try:
        return list(client.get("/v1/models").get("data") or [])
    except RemoteError:
        return []


def server_tokens(client: HttpClient, engine: str, model: str, text: str) -> list[int]:
    """The server's own tokenization of text (no special tokens added)."""
    if engine == "llama.cpp":
        return list(client.post("/tokenize", {"content": text, "add_special": False})["tokens"])
    if engine == "sglang":
        answer = client.post("/tokenize", {"prompt": text, "add_special_tokens": False})
    else:
        answer = client.post("/tokenize", {"model": model, "prompt": text, "add_special_tokens": False})
    tokens = answer.get("tokens")
    if tokens is None:
        raise SpecScopeError(f"{client.url}/tokenize answered without tokens: cannot check the tokenizer")
    return list(tokens)


def connect(url: str, engine: str, tokenizer, *, model: str | None = None,
            api_key: str | None = None, timeout: float = 60.0) -> RemoteLM:
    if engine not in ENGINES:
        raise SpecScopeError(f"unknown engine '{engine}' (choose from {', '.join(ENGINES)})")
    client = HttpClient(url, api_key, timeout)
    try:
        client.request("GET", "/health", retries=1)
    except RemoteError as e:
        raise SpecScopeError(f"the {engine} server at {client.url} is not reachable or not ready "
                             f"({str(e).split(': ', 1)[-1]})") from None
    models = _models(client)
    served = str(models[0].get("id", "")) if models else ""
    if model and models and model not in {str(m.get("id")) for m in models}:
        raise SpecScopeError(f"the server at {client.url} serves '{served}', not '{model}'")
    meta = (models[0].get("meta") or {}) if models else {}  # llama.cpp: n_vocab, n_ctx, n_params
    vocab = int(meta.get("n_vocab") or 0) or _vocab_rows(tokenizer)
    n_ctx = int(meta.get("n_ctx") or (models[0].get("max_model_len") if models else 0) or 1 << 30)
    ours = list(tokenizer(PROBE, add_special_tokens=False)["input_ids"])
    theirs = server_tokens(client, engine, model or served, PROBE)
    if ours != theirs:
        at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        raise SpecScopeError(
            f"tokenizer mismatch: the server at {client.url} ('{served}') splits a probe text "
            f"differently from the profile's tokenizer (first difference at token {at}): a wrong "
            "model, or set `tokenizer:` in the profile to the served model's")
    if vocab < len(tokenizer):
        raise SpecScopeError(f"the server's vocabulary ({vocab}) is smaller than the tokenizer's "
                             f"({len(tokenizer)}): a wrong model")
    n_params = meta.get("n_params")
    target = RemoteLM(client, engine, vocab, n_ctx, int(n_params) if n_params else None,
                      model=model or served)
    if engine == "llama.cpp":  # a whole character, to re-ask a byte token's position (engines.NoProbs)
        target.plain_token = server_tokens(client, engine, "", "a")[0]
    return target


def _vocab_rows(tokenizer) -> int:
    return len(tokenizer)
