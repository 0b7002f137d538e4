"""A target served by a serving engine, behind the interface the decoding loop uses.

The loop (core/engine.py) calls `score(ids, draft, parents, greedy)` on a target that has one
and gets back logits rows for the root and every draft node, like a local pass. Here each row
is the engine's log-probabilities at that position (engines.py says what is asked and read):

- greedy: only the rows the verdict reads are fetched. Starting at the root, the engine's greedy
  token there is compared with the draft; the child that matches (if any) is scored next. So a
  step costs `accepted + 1` one-token requests on llama.cpp (one request on the engines with
  prompt log-probabilities), trees included. A row is the engine's top `n` log-probabilities
  with the remaining mass spread evenly over the other tokens, and the engine's own greedy token
  made its strict maximum: the verdict is the engine's greedy decision, token for token. The
  p shown for a draft token outside the top n is that even share (an estimate), and rows the
  verdict did not need are NaN (shown as "nan": never computed).
- sampling: every row is fetched in full (n = the vocabulary size), so p is the engine's
  distribution and rejection sampling is exact; an engine or server that cannot return the full
  distribution is refused with one line, never approximated.

Per step it records the requests made, their round trips and the server's own compute where
the engine reports it (`last_server_s`), for the cost table.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterator

import torch

from specscope.core.errors import SpecScopeError
from specscope.core.tree import children
from specscope.remote import engines as E
from specscope.remote.http import HttpClient

GREEDY_TOP = 20  # log-probabilities asked per position when greedy (for the p shown)


def make_row(vocab: int, row: E.Row, greedy: bool) -> torch.Tensor:
    """A logits row (log-probabilities) over the full vocabulary from what the engine reported.
    Sampling takes only a whole distribution: fewer tokens than the vocabulary is one line."""
    out = torch.empty(vocab, dtype=torch.float32)
    top = {i: lp for i, lp in row.top.items() if 0 <= i < vocab}
    if not greedy and len(top) < vocab:
        raise SpecScopeError(f"the server returned {len(top)} of {vocab} probabilities at a position: "
                             "sampling needs the whole distribution (raise the server's logprobs "
                             "limit, e.g. vLLM's --max-logprobs), or use greedy (-t 0)")
    if len(top) >= vocab:
        out[list(top)] = torch.tensor(list(top.values()), dtype=torch.float32)
    else:
        rest = max(1.0 - sum(math.exp(lp) for lp in top.values()), 0.0)
        out.fill_(math.log(rest / (vocab - len(top))) if rest > 0 else -1e30)
        if top:
            out[list(top)] = torch.tensor(list(top.values()), dtype=torch.float32)
    if greedy and 0 <= row.token < vocab:  # the engine's pick is the argmax, ties included
        best = out.max()
        if out[row.token] < best or int(out.argmax()) != row.token:
            out[row.token] = torch.nextafter(best, torch.tensor(math.inf))
    return out


class RemoteLM:
    """A served target. `engine`: llama.cpp, vllm, sglang or openai. `vocab_size`: the rows of
    a logits row (the server's, checked against the tokenizer at connect time)."""

    prefill_chunk = 1 << 30  # the server reads long prompts itself: never the tree route
    remote = True
    cache = None
    hidden_size = 0

    def __init__(self, client: HttpClient, engine: str, vocab_size: int, max_positions: int,
                 n_params: int | None = None, model: str = "") -> None:
        if engine not in E.ENGINES:
            raise SpecScopeError(f"unknown engine '{engine}' (choose from {', '.join(E.ENGINES)})")
        self.client, self.engine, self.model = client, engine, model
        self.vocab_size, self.max_positions = vocab_size, max_positions
        self.n_params = n_params
        self.device = torch.device("cpu")
        self.ids: list[int] = []
        self.greedy_top = GREEDY_TOP
        self.last_server_s: float | None = None  # of the latest score(): the server's compute
        self.last_requests = 0
        self.last_wall_s = 0.0
        self.last_reasks = 0  # of the latest score(): positions asked twice (engines.NoProbs)
        self.last_cache_n: list[int | None] = []  # llama.cpp: each request's tokens from its cache
        self.plain_token: int | None = None  # llama.cpp: a token that is one whole character

    # --- what the loop and the drafters read ------------------------------------------------

    def read_params(self, head_rows: int | None = None) -> int:
        """The served model's parameter count where the server says (llama.cpp); otherwise so
        large that MBSU's drafting cost term vanishes (MBSU then reads as tau)."""
        return self.n_params or 1 << 50

    def reset(self) -> None:
        self.ids = []

    def read(self, ids: list[int]) -> Iterator[tuple[int, int]]:
        return iter(())

    def prefill_chunks(self, ids: list[int]) -> Iterator[tuple[int, torch.Tensor]]:
        """Nothing is sent ahead: the first step sends the whole prompt in one request, which
        the server reads in one batch, as it does for its own completion of that prompt."""
        yield len(ids), torch.empty(0, 0)

    def logits(self, hidden: torch.Tensor, weight=None) -> torch.Tensor:
        if weight is not None:
            raise SpecScopeError("a remote target has no head to slice")
        return hidden  # score() returns logits rows already

    def forward(self, ids: list[int], n_last: int = 1) -> torch.Tensor:
        """Logits rows (full distribution) of the last n_last positions of ids."""
        if n_last == 0:
            return torch.empty(0, self.vocab_size)
        context, draft = ids[:len(ids) - n_last + 1], ids[len(ids) - n_last + 1:]
        return self.score(context, draft, list(range(-1, len(draft) - 1)), greedy=False)

    def forward_tree(self, *args, **kwargs):
        raise SpecScopeError("a remote target scores drafts through score(), not forward_tree")

    # --- scoring ----------------------------------------------------------------------------

    def score(self, ids: list[int], draft: list[int], parents: list[int], greedy: bool) -> torch.Tensor:
        """Rows [len(draft) + 1, vocab] for ids[-1] (the root) and each draft node."""
        t0, requests0, wall0 = time.perf_counter(), self.client.requests, self.client.wall_s
        self.last_server_s, self.last_reasks = 0.0, 0
        rows = torch.full((len(draft) + 1, self.vocab_size), math.nan)
        n = self.greedy_top if greedy else self.vocab_size
        kids = children(parents)
        if self.engine == "llama.cpp":
            todo = [-1] if greedy else [-1, *range(len(draft))]
            # a context that is not the last one grown is read cold, as the server's own
            # completion reads a prompt: its prompt cache would re-read the last cached token
            # alone, a pass of another batch size whose rounding can flip a near tie (docs/remote.md)
            cold = not self.ids or len(ids) <= len(self.ids) or ids[:len(self.ids)] != self.ids
            self.last_cache_n = []
            while todo:
                node = todo.pop(0)
                row = self._one(ids + _path(draft, parents, node), n, cold)
                cold = False
                rows[node + 1] = make_row(self.vocab_size, row, greedy)
                if greedy:
                    todo = [c for c in kids[node] if draft[c] == row.token][:1]
        else:
            leaves = [i for i in range(len(draft)) if not kids[i]] or [-1]
            for leaf in leaves:
                nodes = _nodes(parents, leaf)
                scored = self._many(ids + [draft[i] for i in nodes], len(ids) - 1, n)
                for node, row in zip([-1, *nodes], scored.rows):
                    rows[node + 1] = make_row(self.vocab_size, row, greedy)
        self.ids = list(ids)
        self.last_requests = self.client.requests - requests0
        self.last_wall_s = time.perf_counter() - t0
        self.last_roundtrip_s = self.client.wall_s - wall0
        return rows

    def _add_server(self, scored: E.Scored) -> None:
        if scored.server_ms is None or self.last_server_s is None:
            self.last_server_s = None
        else:
            self.last_server_s += scored.server_ms / 1000.0

    def _one(self, prefix: list[int], n: int, cold: bool = False) -> E.Row:
        try:
            scored = E.llamacpp_parse(self.client.post("/completion", E.llamacpp_request(prefix, n, cold=cold)))
        except E.NoProbs:  # a byte token was sampled: ask again with a whole character forced
            self.last_reasks += 1
            scored = E.llamacpp_parse(self.client.post("/completion", E.llamacpp_request(
                prefix, n, force=self._plain_token(), cold=cold)), forced=True)
        self._add_server(scored)
        self.last_cache_n.append(scored.info.get("cache_n"))
        return scored.rows[0]

    def _plain_token(self) -> int:
        if self.plain_token is None:
            self.plain_token = int(self.client.post("/tokenize", {"content": "a", "add_special": False})["tokens"][0])
        return self.plain_token

    def _many(self, path: list[int], start: int, n: int) -> E.Scored:
        if self.engine == "vllm":
            scored = E.vllm_parse(self.client.post("/v1/completions", E.vllm_request(self.model, path, n)), start)
        elif self.engine == "sglang":
            scored = E.sglang_parse(self.client.post("/generate", E.sglang_request(path, start, n)))
        else:
            scored = E.openai_parse(self.client.post("/v1/completions", E.openai_request(self.model, path, n)), start)
        self._add_server(scored)
        return scored


def _nodes(parents: list[int], node: int) -> list[int]:
    """The nodes from the root's first child down to node (empty for the root, -1)."""
    path = []
    while node >= 0:
        path.append(node)
        node = parents[node]
    return path[::-1]


def _path(draft: list[int], parents: list[int], node: int) -> list[int]:
    return [draft[i] for i in _nodes(parents, node)]
