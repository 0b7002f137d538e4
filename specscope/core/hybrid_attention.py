"""Hybrid tree attention (LongSpec): the long shared prefix without a mask, the small tree with one.

A tree verification pass has n+1 queries (the root and n nodes) over cached + n + 1 keys. The
dense way builds an (n+1) x (cached+n+1) additive mask, which also keeps attention off its
fast kernels and, for grouped-query models, makes transformers copy the whole prefix's keys and
values once per query head group. But every query may see every prefix key: only the last n+1
columns need a mask. So attention is split in two softmax parts and merged by their
log-sum-exps (as in flash attention's blocks):

    prefix  out_p, lse_p = attention(q, K[:cached], V[:cached])     no mask; query head groups
                                                                    packed along the query axis
    tree    out_t, lse_t = attention(q, K[cached:], V[cached:], M)  (n+1) x (n+1) mask, float32
    merged  lse = logaddexp(lse_p, lse_t)
            out = exp(lse_p - lse) * out_p + exp(lse_t - lse) * out_t

On the CPU the prefix part runs in torch's flash kernel, which returns its log-sum-exp; other
devices compute it in float32 with plain matmuls. The function is registered with transformers'
AttentionInterface under NAME and switched on only for the duration of a tree pass
(`hybrid_attention(model)`); the mask it receives is the tree's own (n+1) x (n+1) one, which
covers the last keys. Softcapped attention (Gemma 2) is not reproduced: `supported` says no.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers import AttentionInterface

NAME = "specscope_hybrid_tree"


def supported(config) -> bool:
    return getattr(config, "attn_logit_softcapping", None) is None


def prefix_part(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                fast: bool | None = None):
    """Unmasked attention of q [B, Hk, G*L, D] over k, v [B, Hk, P, D]: (out, lse [B, Hk, G*L]).
    fast: torch's CPU flash kernel (the default on the CPU), else float32 matmuls."""
    if q.device.type == "cpu" if fast is None else fast:
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, 0.0, False, scale=scale)[:2]
        return out, lse.float()
    s = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    lse = torch.logsumexp(s, -1)
    return torch.matmul(torch.exp(s - lse[..., None]), v.float()), lse


def hybrid_tree_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                          **kwargs):
    """query [B, H, L, D], key/value [B, Hk, P + T, D], attention_mask [.., L, T] additive over
    the last T keys (the tree). Returns ([B, L, H, D], None), as transformers' attentions do."""
    b, h, n_q, d = query.shape
    hk, t = key.shape[1], attention_mask.shape[-1]
    g, p = h // hk, key.shape[2] - t
    scale = scaling if scaling is not None else d ** -0.5
    q = query.reshape(b, hk, g, n_q, d)  # query head hk*g + j reads key head hk (repeat_kv's order)
    # the tree: a few keys, with the mask, in float32
    s = torch.einsum("bkgld,bktd->bkglt", q.float(), key[:, :, p:].float()) * scale
    s = s + attention_mask.float().reshape(1, 1, 1, n_q, t)
    lse = torch.logsumexp(s, -1)
    out = torch.einsum("bkglt,bktd->bkgld", torch.exp(s - lse[..., None]), value[:, :, p:].float())
    if p > 0:  # the prefix: every query sees every key, so the head groups pack along the queries
        out_p, lse_p = prefix_part(q.reshape(b, hk, g * n_q, d), key[:, :, :p], value[:, :, :p], scale)
        out_p, lse_p = out_p.reshape(b, hk, g, n_q, d).float(), lse_p.reshape(b, hk, g, n_q)
        total = torch.logaddexp(lse, lse_p)
        out = out * torch.exp(lse - total)[..., None] + out_p * torch.exp(lse_p - total)[..., None]
    out = out.to(query.dtype).reshape(b, h, n_q, d)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, hybrid_tree_attention)


@contextmanager
def hybrid_attention(model: torch.nn.Module):
    """Route the model's attention through hybrid_tree_attention for one pass."""
    config = model.config
    old = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = old
