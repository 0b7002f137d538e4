"""A causal LM with its own KV cache, kept in step with a list of token ids.

`forward(ids, n_last)` makes the cache cover `ids` and returns the final hidden states of the
last `n_last` positions. The cache is synced by longest common prefix: anything past it (rejected
drafts, an older conversation turn) is cropped away first, so callers never manage rollback.
The LM head is applied separately (`logits`), so a drafter can use only some rows of it.
`quantize` swaps the Linear layers (head included) for weight-only int8/int4 ones (quant.py).
"""
from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def sync_cache(holder, ids: list[int], n_last: int) -> int:
    """Crop holder.cache (covering holder.ids) back to its longest common prefix with `ids`,
    leaving at least n_last tokens to feed. Returns how many tokens of `ids` stay cached."""
    keep = min(common_prefix(holder.ids, ids), len(ids) - n_last)
    if keep == 0:
        holder.reset()
    elif keep < len(holder.ids):
        holder.cache.crop(keep - len(holder.ids))  # negative: drop that many tokens
        holder.ids = holder.ids[:keep]
    return keep


class CachedLM:
    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.config = model.config
        self.base = model.base_model
        self.head = model.get_output_embeddings()
        self.embed = model.get_input_embeddings()
        self.device = next(model.parameters()).device
        self.ids: list[int] = []
        self.cache = DynamicCache(config=self.config)
        self.forward_passes = 0
        self.quant = "none"
        # transformers >= 5.2x names the argument `cache`; older releases `past_key_values`.
        params = inspect.signature(self.base.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"

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
        from specscope.core.quant import QuantLinear

        skip = {id(self.embed.weight)} | {id(p) for p in self.head.parameters()}
        body = sum(p.numel() for p in self.model.parameters() if id(p) not in skip)
        quantized = [m for m in self.model.modules() if isinstance(m, QuantLinear) and m is not self.head]
        body += sum(m.weight_count() for m in quantized)
        rows = self.vocab_size if head_rows is None else head_rows
        return body + rows * self.hidden_size

    def quantize(self, mode: str) -> None:
        """Weight-only quantization of every Linear, the head included: 'none', 'int8', 'int4'."""
        from specscope.core.quant import quantize_model

        if mode != "none":
            quantize_model(self.model, mode)
            self.head = self.model.get_output_embeddings()
            self.quant = mode

    def head_rows(self, index: torch.Tensor):
        """The head's rows `index`, in that order, for `logits(hidden, rows[:k])`: a weight tensor,
        or a quantized linear over those rows when the head is quantized."""
        if hasattr(self.head, "select_rows"):
            return self.head.select_rows(index)
        return self.head.weight.detach()[index].contiguous()

    def reset(self) -> None:
        self.ids = []
        self.cache = DynamicCache(config=self.config)

    @torch.inference_mode()
    def forward(self, ids: list[int], n_last: int = 1) -> torch.Tensor:
        """Hidden states [n_last, hidden] for the last n_last positions of ids."""
        keep = sync_cache(self, ids, n_last)
        new = ids[keep:]
        if not new:
            return torch.empty(0, self.hidden_size, device=self.device)
        out = self.base(input_ids=torch.tensor([new], device=self.device), use_cache=True,
                        **{self._cache_kwarg: self.cache})
        self.ids = list(ids)
        self.forward_passes += 1
        return out.last_hidden_state[0, len(new) - n_last:]

    @torch.inference_mode()
    def forward_tree(self, ids: list[int], tokens: list[int], parents: list[int]) -> torch.Tensor:
        """Hidden states [n+1, hidden] for ids[-1] (the root) and every tree node, in one pass
        with a tree attention mask. Call keep_path afterwards to drop the unaccepted nodes."""
        from specscope.core.tree import tree_attention, tree_positions

        self.forward(ids[:-1], 0)
        cached = len(ids) - 1
        dtype = next(self.model.parameters()).dtype
        out = self.base(
            input_ids=torch.tensor([ids[-1:] + tokens], device=self.device),
            attention_mask=tree_attention(parents, cached, dtype, self.device),
            position_ids=tree_positions(parents, cached, self.device),
            use_cache=True,
            **{self._cache_kwarg: self.cache},
        )
        self.forward_passes += 1
        self.ids = list(ids) + [-1] * len(tokens)  # tree slots: not a sequence until keep_path
        return out.last_hidden_state[0]

    def keep_path(self, ids: list[int], tokens: list[int], path: tuple[int, ...]) -> None:
        """After forward_tree: keep the context, the root and the accepted nodes only."""
        keep = torch.tensor(list(range(len(ids))) + [len(ids) + i for i in path], device=self.device)
        for layer in getattr(self.cache, "layers", []):
            if getattr(layer, "keys", None) is not None:
                layer.keys = layer.keys.index_select(-2, keep)
                layer.values = layer.values.index_select(-2, keep)
        self.ids = list(ids) + [tokens[i] for i in path]

    @torch.inference_mode()
    def logits(self, hidden: torch.Tensor, weight=None) -> torch.Tensor:
        """Float32 logits over the full vocabulary, or over the rows of `weight` (a slice of
        `head_rows`, e.g. VocabTrim's ranked rows: a tensor, or a quantized linear)."""
        if weight is None:
            return self.head(hidden).float()
        if isinstance(weight, torch.Tensor):
            return torch.nn.functional.linear(hidden, weight).float()
        return weight(hidden).float()
