"""Row-invariant attention: each query row computed exactly as a one-row pass would compute it.

torch's attention kernels block their sums by the pass's shape, so a query row attended in a
5-row verification and the same row in plain decoding (1 row) differ in the last bits. In
float32 that never matters for p. Under w8a8 (quant.py) it does: every linear rounds its inputs
to 8 bits, so a last-bit difference that crosses a rounding boundary becomes a whole step, and
over 28 layers the hidden states part (measured on the embedded 1.5B target: 2e-7 after the
first attention, 1.27 after the last layer). Greedy speculation then parts from plain decoding
(67% of prompts identical in a bench) although every linear is bitwise row-invariant.

So under w8a8 the target's attention runs here: every row on its own, over exactly the keys it
may see (gathered, in position order), through the same torch call a one-row pass makes: query
head groups packed along the query axis, no mask. A verification row, a tree node and a plain
decoding step that see the same keys compute the same bits. Prompt reading (passes over more
than PREFILL_ROWS rows, the same in every method) keeps transformers' own attention; so would a
tree of more than PREFILL_ROWS nodes (none of specscope's drafters builds one). Tree passes give
the full mask (CachedLM.forward_tree's dense form), not hybrid attention.
The cost is a small call per row and layer; see docs/concepts.md ("w8a8").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AttentionInterface

NAME = "specscope_rowwise"
PREFILL_ROWS = 128  # longer passes read a prompt: transformers' attention, shape-blocked


def _visible(mask: torch.Tensor | None, row: int, n_q: int, n_k: int, batch: int) -> torch.Tensor | None:
    """Indices of the keys query `row` may see, or None for the causal prefix [0, n_k - n_q + row]."""
    if mask is None:
        return None
    m = mask[batch if mask.shape[0] > 1 else 0, 0, row]
    ok = m if m.dtype == torch.bool else m > torch.finfo(m.dtype).min / 2
    if ok.shape[-1] < n_k:  # a mask over the last keys only (a tree's): the prefix is visible
        ok = torch.cat([torch.ones(n_k - ok.shape[-1], dtype=torch.bool, device=ok.device), ok])
    return ok.nonzero().squeeze(-1)


def rowwise_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """query [B, H, L, D], key/value [B, Hk, K, D]; attention_mask None (causal), boolean or
    additive, over all K keys or the last ones. Returns ([B, L, H, D], None)."""
    b, h, n_q, d = query.shape
    if n_q > PREFILL_ROWS:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    hk, n_k = key.shape[1], key.shape[2]
    g = h // hk
    scale = scaling if scaling is not None else d ** -0.5
    out = query.new_empty(b, n_q, h, d)
    for bi in range(b):
        for i in range(n_q):
            idx = _visible(attention_mask, i, n_q, n_k, bi)
            if idx is None:
                k, v = key[bi:bi + 1, :, :n_k - n_q + i + 1], value[bi:bi + 1, :, :n_k - n_q + i + 1]
            else:
                k, v = key[bi:bi + 1].index_select(2, idx), value[bi:bi + 1].index_select(2, idx)
            q = query[bi, :, i].reshape(1, hk, g, d)  # head hk*g + j reads key head hk
            o = F.scaled_dot_product_attention(q, k.contiguous(), v.contiguous(), scale=scale)
            out[bi, i] = o.reshape(h, d)
    return out, None


AttentionInterface.register(NAME, rowwise_attention)
try:  # transformers builds the masks it passes by the attention's name
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
except ImportError:  # older transformers: the mask comes from the sdpa path's own rules
    pass


def use_rowwise(model: torch.nn.Module) -> None:
    """Route `model`'s attention through rowwise_attention from now on."""
    model.config._attn_implementation = NAME
