"""A drafter KV cache of constant size: a few attention sinks plus a sliding window (LongSpec).

`WindowedLM` is a CachedLM whose cache keeps the first `sinks` positions and the most recent
`window` ones; the middle is evicted, so a draft token costs the same at 1k and at 100k tokens
of context, and the cache's memory stays bounded. Window 0 is the plain unbounded CachedLM.

Positions (`positions=`):
  "original"    (the default) kept tokens keep their original positions: the cache holds entries
                for positions [0, sinks) + [gap_end, len(ids)); new tokens are fed with explicit
                `position_ids`, and the causal mask runs over cache entries, which are in order.
  "contiguous"  (StreamingLLM's, close to LongSpec's re-indexing) a token's position is its
                index in the cache, so positions never exceed sinks + window + the draft; at each
                eviction the window's keys are re-rotated back by the evicted count (RoPE
                rotations compose). The re-rotation rounds the keys in the model's dtype once
                per eviction; storing pre-RoPE keys would avoid that (not done). Needs a model
                with `rotary_emb` and plain RoPE (Llama/Qwen2 family).

Rollback stays the CachedLM contract: `self.ids` are the ids the cache covers (the evicted middle
included, as ids), synced to each request by common prefix. Cropping drops entries from the end;
a common prefix that ends inside the evicted middle cannot be cropped to, so the cache restarts.
Only entries more than `window` tokens behind the tail are evicted: a drafter's uncommitted
tokens (at most the draft length) are the tail, so with a window >= the draft length a rollback
never reaches the middle. Eviction goes in chunks (the window then holds between window - chunk
and window tokens before a pass), so the copy it costs is paid once every chunk tokens.

A long request (a prompt, a restart) feeds only the sinks and its last `window` tokens: the
prefill is bounded too. The draft then conditions on less than the whole context; verification
by the target (whose cache is full) keeps the output exact, only acceptance can change.
"""
from __future__ import annotations

import torch

from specscope.core.errors import SpecScopeError
from specscope.core.lm import CachedLM, common_prefix, drop_last, reset_on_failure, with_cache

SINKS = 4  # attention-sink tokens kept at the start (StreamingLLM's choice)


def cache_bytes(cache) -> int:
    """Bytes of the keys and values a transformers cache holds (0 when empty or None); a
    llama.cpp cache (core/llamacpp.py) counts its own."""
    if hasattr(cache, "kv_bytes"):
        return cache.kv_bytes()
    total = 0
    for layer in getattr(cache, "layers", ()):
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


class WindowedLM(CachedLM):
    def __init__(self, model: torch.nn.Module, check: bool = True, window: int = 0,
                 sinks: int = SINKS, positions: str = "original") -> None:
        super().__init__(model, check)
        self.window = window
        self.sinks = sinks
        self.gap_end = 0  # evicted positions: [sinks, gap_end) when gap_end > sinks
        self.positions = "original"
        self.set_positions(positions)

    def set_positions(self, positions: str) -> None:
        """'original' or 'contiguous' (see the module's docstring); a change restarts the cache."""
        if positions not in ("original", "contiguous"):
            raise ValueError(f"positions must be original or contiguous, got {positions!r}")
        rope = getattr(self.base, "rotary_emb", None)
        if positions == "contiguous" and (getattr(rope, "rope_type", None) != "default" or
                                          rope.attention_scaling != 1.0):
            raise SpecScopeError("contiguous draft-window positions need a plain-RoPE model")
        if positions != self.positions:
            self.positions = positions
            self.reset()

    @property
    def gap(self) -> int:
        return max(0, self.gap_end - self.sinks)

    @property
    def entries(self) -> int:
        """Tokens the cache holds: len(ids) minus the evicted middle."""
        return len(self.ids) - self.gap

    @property
    def chunk(self) -> int:
        return max(1, self.window // 8)

    def set_window(self, window: int) -> None:
        """A new window size; 0 (unbounded) after an eviction restarts the cache, whose
        evicted middle would otherwise never come back."""
        if window < 0:
            raise ValueError(f"the draft window must be >= 0, got {window}")
        if window != self.window:
            self.window = window
            if window == 0 and self.gap:
                self.reset()

    def reset(self) -> None:
        super().reset()
        self.gap_end = 0

    def kv_bytes(self) -> int:
        return cache_bytes(self.cache)

    def read(self, ids: list[int]):
        """A request longer than the window is one pass over the sinks and the last `window`
        tokens, never a chunked read of the whole context: (done, total) before and after it.
        Within the window it reads like the unbounded cache, a chunk a pass."""
        done, total = common_prefix(self.ids, ids), len(ids)
        if not self.window or total - done <= self.window:
            yield from super().read(ids)
            return
        if self.sinks + self.window <= self.prefill_chunk:
            return  # one pass the caller's own next forward makes anyway
        yield done, total
        self.forward(ids, 0)
        yield total, total

    def forward_tree(self, ids: list[int], tokens: list[int], parents: list[int],
                     dense: bool = False) -> torch.Tensor:
        """CachedLM's tree pass, while nothing is evicted: it places the tree after the cache's
        last entry and gives nodes positions by cache index, which stop being positions once the
        middle is gone. Refused then (drafters draft trees by context, through forward)."""
        self.forward(ids[:-1], 0)
        self._check_contiguous("a tree pass")
        return super().forward_tree(ids, tokens, parents, dense)

    def keep_path(self, ids: list[int], tokens: list[int], path: tuple[int, ...]) -> None:
        self._check_contiguous("keep_path")
        super().keep_path(ids, tokens, path)

    def _check_contiguous(self, what: str) -> None:
        if self.gap:
            raise SpecScopeError(f"{what} needs every position cached; this draft-window cache "
                                 f"has evicted {self.gap} (window {self.window})")

    def _feed(self, ids: list[int], n_last: int) -> tuple[int, torch.Tensor]:
        if self.window == 0 and not self.gap:
            return super()._feed(ids, n_last)
        keep = min(common_prefix(self.ids, ids), len(ids) - n_last)
        if keep == 0 or (self.gap and keep < self.gap_end):
            self.reset()  # the prefix ends in the evicted middle (or nothing is shared)
            keep = 0
        elif keep < len(self.ids):
            drop_last(self.cache, len(self.ids) - keep)
            self.ids = self.ids[:keep]
        n = len(ids)
        start = max(keep, n - max(self.window, n_last))  # the first position of the fed tail
        if start > keep:  # a long request: everything cached past the sinks is out of the window
            self._evict(keep)
            fed = list(range(min(keep, self.sinks), min(self.sinks, start))) + list(range(start, n))
        else:
            if self.window and self.entries > self.sinks + self.window:
                self._evict(keep - (self.window - self.chunk))
            fed = list(range(keep, n))
        if not fed:
            return keep, torch.empty(0, self.hidden_size, device=self.device)
        pos = fed
        if self.positions == "contiguous":  # a token's position is its index in the cache
            first = self.cache.get_seq_length()
            pos = list(range(first, first + len(fed)))
        with reset_on_failure(self):
            out = self.base(input_ids=torch.tensor([[ids[i] for i in fed]], device=self.device),
                            position_ids=torch.tensor([pos], device=self.device), use_cache=True,
                            **with_cache(self.base, self.cache))
        if start > keep and start > self.sinks:
            self.gap_end = max(self.gap_end, start)
        self.ids = list(ids)
        # the states of the tail start..n-1 (sinks fed again come first): CachedLM's contract
        return start, out.last_hidden_state[0][len(fed) - (n - start):]

    def _evict(self, end: int) -> None:
        """Drop cached positions [max(sinks, gap_end), end) from every layer. (Only
        full-attention DynamicLayers reach here: CachedLM refuses the others.)"""
        lo = max(self.sinks, self.gap_end)
        if end <= lo:
            return
        a, b = self.sinks, self.sinks + (end - lo)  # entry indices: the gap is already gone
        shift = self._rotation(b - a) if self.positions == "contiguous" else None
        for layer in self.cache.layers:
            if getattr(layer, "keys", None) is None or layer.keys.numel() == 0:
                continue
            kept = layer.keys[..., b:, :]
            if shift is not None:  # the window moves down by b - a positions
                cos, sin = shift
                k = kept.float()
                kept = (k * cos + torch.cat((-k[..., k.shape[-1] // 2:], k[..., :k.shape[-1] // 2]),
                                            -1) * sin).to(layer.keys.dtype)
            layer.keys = torch.cat((layer.keys[..., :a, :], kept), -2)
            layer.values = torch.cat((layer.values[..., :a, :], layer.values[..., b:, :]), -2)
        self.gap_end = end

    def _rotation(self, by: int) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE's cos and sin (float32) for moving a key back by `by` positions."""
        dummy = torch.zeros(1, device=self.device, dtype=torch.float32)
        cos, sin = self.base.rotary_emb(dummy, torch.tensor([[-by]], device=self.device))
        return cos.float()[:, None], sin.float()[:, None]  # [1, 1, 1, head_dim]
