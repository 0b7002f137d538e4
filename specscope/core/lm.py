"""A causal LM with its own KV cache, kept in step with a list of token ids.

`forward(ids, n_last)` makes the cache cover `ids` and returns the final hidden states of the
last `n_last` positions. The cache is synced by longest common prefix: anything past it (rejected
drafts, an older conversation turn) is cropped away first, so callers never manage rollback.
A pass that fails part way (out of memory, Ctrl-C) empties the cache, since some layers may
have grown and others not; the next pass starts from a clean prefill.

The LM head is applied separately (`logits`), so a drafter can use only some rows of it. Whatever
the model's own forward does after its head (final-logit soft-capping, logit scaling) is applied
too, and checked once at load against the model's own logits, so p is the model's p.
`quantize` swaps the Linear layers (head included) for weight-only int8/int4 ones (quant.py).

Long inputs are read `prefill_chunk` tokens a pass (each chunk attends to the cache of the ones
before it, so the cache and the hidden states are those of one pass, up to rounding): peak memory
stays bounded (no full context x context mask), and `prefill_chunks` lets the caller report
progress between passes (a long prompt's prefill takes minutes on a CPU).
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from specscope.core.errors import SpecScopeError

PREFILL_CHUNK = 512  # tokens a pass when reading a long input


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix (slice comparisons run in C: O(log n) of them)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def cache_kwarg(fn) -> str:
    """The name a forward takes its KV cache by: transformers >= 5.2x says `cache`, older
    releases `past_key_values` (decoder layers: `past_key_value`)."""
    params = inspect.signature(fn).parameters
    return next((a for a in ("cache", "past_key_values", "past_key_value") if a in params), "cache")


@functools.cache
def _cache_name(cls: type) -> str:
    return cache_kwarg(cls.forward)


def with_cache(module, cache) -> dict:
    """{name: cache}, to pass a KV cache to a transformers module (a causal LM, its body, a
    decoder layer) by the name its forward takes: the one route of every call that passes one.
    A wrong name is not an error: it lands in **kwargs and the module runs without the cache."""
    return {_cache_name(type(module)): cache}


def drop_last(cache, count: int) -> None:
    """Remove the last `count` entries of a transformers cache: the one way specscope crops.
    Nothing is called when nothing is to be removed, since `crop(0)` differs between releases
    (transformers 5: a no-op; the 4.5x line: "keep 0 tokens", an emptied cache). A count is
    passed as crop's negative argument, which means "drop that many" in both lines."""
    if count < 0:
        raise ValueError(f"cannot drop {count} cache entries")
    if count:
        cache.crop(-count)


def sync_cache(holder, ids: list[int], n_last: int) -> int:
    """Crop holder.cache (covering holder.ids) back to its longest common prefix with `ids`,
    leaving at least n_last tokens to feed. Returns how many tokens of `ids` stay cached."""
    keep = min(common_prefix(holder.ids, ids), len(ids) - n_last)
    if keep == 0:
        holder.reset()
    elif keep < len(holder.ids):
        drop_last(holder.cache, len(holder.ids) - keep)
        holder.ids = holder.ids[:keep]
    return keep


def read_in_chunks(lm, ids: list[int], chunk: int) -> Iterator[tuple[int, int]]:
    """Make lm's cache cover ids `chunk` tokens a pass (lm: anything with CachedLM's `ids` and
    `forward`), yielding (done, total) before the first pass and after each. Only when that
    takes more than one pass: a shorter gap is left to the caller's own next forward, in one
    pass with whatever it adds (splitting it would cost a pass)."""
    done, total = common_prefix(lm.ids, ids), len(ids)
    if total - done <= chunk:
        return
    yield done, total
    while done < total:
        done = min(done + chunk, total)
        lm.forward(ids[:done], 0)
        yield done, total


@contextmanager
def reset_on_failure(holder):
    """A pass that raises leaves some layers grown and others not: start clean next time."""
    try:
        yield
    except BaseException:
        holder.reset()
        raise


def logit_transform(config):
    """What `*ForCausalLM.forward` does after the LM head, from the config (None: nothing)."""
    cap = getattr(config, "final_logit_softcapping", None)  # Gemma 2/3
    scale = getattr(config, "logit_scale", None)  # Cohere: multiplies
    div = getattr(config, "logits_scaling", None)  # Granite: divides
    if not (cap or (scale and scale != 1.0) or (div and div != 1.0)):
        return None

    def apply(logits: torch.Tensor) -> torch.Tensor:
        if scale and scale != 1.0:
            logits = logits * scale
        if div and div != 1.0:
            logits = logits / div
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    return apply


def apply_rows(hidden: torch.Tensor, rows) -> torch.Tensor:
    """Some of a head's rows (`head_rows`, then `[:k]`) over hidden: a tensor, or a quantized or
    packed slice (a module)."""
    return torch.nn.functional.linear(hidden, rows) if isinstance(rows, torch.Tensor) else rows(hidden)


class CachedLM:
    prefill_chunk = PREFILL_CHUNK  # tokens a pass over long inputs (tests set small ones)

    def __init__(self, model: torch.nn.Module, check: bool = True) -> None:
        self.model = model
        self.config = model.config
        self.base = model.base_model
        self.head = model.get_output_embeddings()
        self.embed = model.get_input_embeddings()
        self.device = next(model.parameters()).device
        self.ids: list[int] = []
        self._body_params: int | None = None
        self.quant = "none"
        self.cache = self._new_cache()
        self._after_head = logit_transform(self.config)
        if check:
            self.check_logits()

    def _new_cache(self) -> DynamicCache:
        cache = DynamicCache(config=self.config)
        odd = {type(layer).__name__ for layer in cache.layers if type(layer) is not DynamicLayer}
        if odd:
            raise SpecScopeError(
                f"{type(self.model).__name__} uses {', '.join(sorted(odd))} cache layers (sliding "
                "window or other): specscope rolls back and prunes full-attention caches only")
        return cache

    @torch.inference_mode()
    def check_logits(self) -> None:
        """Refuse a model whose own forward computes logits some other way than ours."""
        ids = torch.tensor([[0, 1, 2]], device=self.device) % self.vocab_size
        theirs = self.model(input_ids=ids).logits[0].float()
        ours = self.logits(self.base(input_ids=ids).last_hidden_state[0])
        tol = 1e-3 if theirs.dtype == torch.float32 and self.embed.weight.dtype == torch.float32 else 5e-2
        if theirs.shape != ours.shape or not torch.allclose(ours, theirs, atol=tol, rtol=tol):
            raise SpecScopeError(
                f"{type(self.model).__name__} computes its logits in a way specscope does not "
                "reproduce (something after the LM head): its p would not be the model's p")

    @property
    def vocab_size(self) -> int:
        return self.head.out_features

    @property
    def hidden_size(self) -> int:
        return self.head.in_features

    @property
    def max_positions(self) -> int:
        return int(getattr(self.config, "max_position_embeddings", 1 << 30))

    def read_params(self, head_rows: int | None = None) -> int:
        """Weights read per decoding step: everything but the embedding lookup, with the LM head
        counted for `head_rows` rows (the full head by default). Used for the ratio r in MBSU."""
        if self._body_params is None:  # weights change only in quantize(): count them once
            from specscope.core.quant import QuantLinear

            skip = {id(self.embed.weight)} | {id(p) for p in self.head.parameters()}
            self._body_params = sum(p.numel() for p in self.model.parameters() if id(p) not in skip)
            self._body_params += sum(m.weight_count() for m in self.model.modules()
                                     if isinstance(m, QuantLinear) and m is not self.head)
        rows = self.vocab_size if head_rows is None else head_rows
        return self._body_params + rows * self.hidden_size

    def quantize(self, mode: str, progress=None) -> None:
        """Weight-only quantization of every Linear, the head included: 'none', 'int8', 'int4';
        then, in float32 on a CPU, the linears left unquantized are packed (packed.py).
        Through the on-disk cache (quant_cache.py) where the model has a local source: a later
        load memory-maps the codes instead of reading the weights to quantize them again. Build
        with check=False and call check_logits() afterwards, so the check does not read (and
        make resident) the unquantized weights."""
        from specscope.core.packed import pack_model
        from specscope.core.quant_cache import quantize_cached

        if mode != "none":
            quantize_cached(self.model, mode, progress=progress)  # w8a8: rowwise attention too
            self.quant = mode
        pack_model(self.model)  # float32 on a CPU: the linears left run on packed weights
        self.head = self.model.get_output_embeddings()
        self._body_params = None

    def head_rows(self, index: torch.Tensor):
        """The head's rows `index`, in that order, for `logits(hidden, rows[:k])`: a weight tensor,
        or a quantized linear over those rows when the head is quantized."""
        if hasattr(self.head, "select_rows"):
            return self.head.select_rows(index)
        return self.head.weight.detach()[index].contiguous()

    def reset(self) -> None:
        self.ids = []
        self.cache = self._new_cache()

    @torch.inference_mode()
    def forward(self, ids: list[int], n_last: int = 1) -> torch.Tensor:
        """Hidden states [n_last, hidden] for the last n_last positions of ids."""
        hidden = self._feed(ids, n_last)[1]  # sync_cache leaves at least n_last rows to feed
        return hidden[len(hidden) - n_last:]

    @torch.inference_mode()
    def prefill(self, ids: list[int]) -> tuple[int, torch.Tensor]:
        """Cover ids; returns (start, hidden states of positions start.. that were computed)."""
        parts = list(self.prefill_chunks(ids))
        return parts[0][0], torch.cat([h for _, h in parts])

    def read(self, ids: list[int]) -> Iterator[tuple[int, int]]:
        """Make the cache cover ids ahead of a step, yielding (done, total) between passes when
        that takes more than one (read_in_chunks); a drafter's `prefill`."""
        return read_in_chunks(self, ids, self.prefill_chunk)

    @torch.inference_mode()
    def prefill_chunks(self, ids: list[int]) -> Iterator[tuple[int, torch.Tensor]]:
        """Cover ids, `prefill_chunk` tokens a pass; after each pass yields (start, hidden states
        of positions start..), once with no rows when nothing was new. Stopping part way leaves
        the cache covering the chunks read so far."""
        keep = sync_cache(self, ids, 0)
        if keep == len(ids):
            yield keep, torch.empty(0, self.hidden_size, device=self.device)
        for start in range(keep, len(ids), self.prefill_chunk):
            yield start, self._pass(ids[:start + self.prefill_chunk], start)

    def _feed(self, ids: list[int], n_last: int) -> tuple[int, torch.Tensor]:
        keep = sync_cache(self, ids, n_last)
        if keep == len(ids):
            return keep, torch.empty(0, self.hidden_size, device=self.device)
        chunks = [self._pass(ids[:start + self.prefill_chunk], start)
                  for start in range(keep, len(ids), self.prefill_chunk)]
        return keep, chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    def _pass(self, ids: list[int], start: int) -> torch.Tensor:
        """One forward over ids[start:], the cache covering ids[:start]; hidden states [n, d]."""
        with reset_on_failure(self):
            out = self.base(input_ids=torch.tensor([ids[start:]], device=self.device), use_cache=True,
                            **with_cache(self.base, self.cache))
        self.ids = list(ids)
        return out.last_hidden_state[0]

    @torch.inference_mode()
    def forward_tree(self, ids: list[int], tokens: list[int], parents: list[int],
                     dense: bool = False) -> torch.Tensor:
        """Hidden states [n+1, hidden] for ids[-1] (the root) and every tree node, in one pass
        with a tree attention mask. Call keep_path afterwards to drop the unaccepted nodes.
        The cached context is attended without a mask and only the tree with one (hybrid
        attention, hybrid_attention.py); `dense` builds the full (n+1) x (context+n+1) mask."""
        from specscope.core.hybrid_attention import hybrid_attention, supported
        from specscope.core.rowwise_attention import NAME as ROWWISE
        from specscope.core.tree import tree_attention, tree_positions

        self.forward(ids[:-1], 0)
        cached = len(ids) - 1
        dense = dense or not supported(self.config) or self.config._attn_implementation == ROWWISE
        dtype = next(self.model.parameters()).dtype
        mask = tree_attention(parents, cached, dtype, self.device) if dense else \
            tree_attention(parents, 0, torch.float32, self.device)  # the tree's own columns
        with reset_on_failure(self), (nullcontext() if dense else hybrid_attention(self.model)):
            out = self.base(
                input_ids=torch.tensor([ids[-1:] + tokens], device=self.device),
                attention_mask=mask,
                position_ids=tree_positions(parents, cached, self.device),
                use_cache=True,
                **with_cache(self.base, self.cache),
            )
        self.ids = list(ids) + [-1] * len(tokens)  # tree slots: not a sequence until keep_path
        return out.last_hidden_state[0]

    @torch.inference_mode()
    def keep_path(self, ids: list[int], tokens: list[int], path: tuple[int, ...]) -> None:
        """After forward_tree: keep the context, the root and the accepted nodes only. Moves the
        path's keys and values next to the root, then crops: O(path), not O(context).
        (Only full-attention DynamicLayers reach here; _new_cache refuses the others.)"""
        n = len(ids)
        if path:
            src = torch.tensor([n + i for i in path], device=self.device)
            for layer in self.cache.layers:
                for t in (layer.keys, layer.values):
                    t[..., n:n + len(path), :] = t.index_select(-2, src)
        drop_last(self.cache, len(self.ids) - n - len(path))  # 0 when every node was accepted
        self.ids = list(ids) + [tokens[i] for i in path]

    @torch.inference_mode()
    def logits(self, hidden: torch.Tensor, weight=None) -> torch.Tensor:
        """Float32 logits over the full vocabulary, or over the rows of `weight` (a slice of
        `head_rows`, e.g. VocabTrim's ranked rows: a tensor, or a quantized linear)."""
        out = (self.head(hidden) if weight is None else apply_rows(hidden, weight)).float()
        return self._after_head(out) if self._after_head else out
