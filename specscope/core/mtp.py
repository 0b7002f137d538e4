"""FastMTP's head: one multi-token-prediction module, shared across draft steps, on the target.

For a position t with the target's final hidden state h_t (after its final norm: what its LM
head reads) and the next token x_{t+1}:

    s = Norm_out(Block(W [Norm_h(h_t) ; Norm_e(e(x_{t+1}))]))     at rotary position t
    logits(x_{t+2}) = LMHead(s)                                   (the target's, frozen, shared)

W is 2d -> d, Block one decoder layer of the target's architecture (built from its config and
initialised from its last layer), e the target's input embedding (frozen, shared). Draft step 1
uses the target's h_t at the last position whose hidden state is known; step j > 1 feeds the
head's own s and its own drafted token back through the same weights, one position further.
s is fed back after Norm_out so that it has the same form as the target's h_t (both are what an
LM head reads).

The Block has its own KV cache. Entry t of that cache is made from (h_t, x_{t+1}); the drafter
keeps only entries made from the target's hidden states of committed positions.

The artifact (one safetensors file) holds the head's weights (not the shared embedding and LM
head), a VocabTrim-style ranking of token ids (logits are taken over its first K rows) and a JSON
record: the target's fingerprint, the tokenizer checksum and the training settings.
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from specscope.core.errors import SpecScopeError
from specscope.core.files import atomic_write, read_artifact
from specscope.core.lm import CachedLM, with_cache
from specscope.core.vocab import model_fingerprint, tokenizer_checksum

FORMAT = "specscope-mtp/1"
INITS = ("hidden", "embed")  # W = [I ; 0] (start from the target's state) or [0 ; I] (the token)
IDENTITY_KEYS = ("model_type", "layers", "hidden", "vocab", "head_sha256")


def _decoder(model: nn.Module) -> nn.Module:
    """The transformer body (model.model for Qwen2/Llama-style causal LMs)."""
    base = model.base_model
    if not hasattr(base, "layers") or not hasattr(base, "norm") or not hasattr(base, "rotary_emb"):
        raise SpecScopeError(f"FastMTP needs a Llama/Qwen-style decoder (layers, norm, rotary "
                             f"embedding); {type(model).__name__} has none")
    return base


def head_config(config):
    """The target's config, cut to one decoder layer, with explicit-mask attention."""
    cfg = copy.deepcopy(config)
    cfg.num_hidden_layers = 1
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = [cfg.layer_types[-1]]
    cfg._attn_implementation = "sdpa"
    return cfg


class MTPHead(nn.Module):
    """The trainable part of the head; embedding and LM head come from the target."""

    def __init__(self, target_model: nn.Module) -> None:
        super().__init__()
        base = _decoder(target_model)
        self.config = head_config(target_model.config)
        d = self.config.hidden_size
        eps = getattr(self.config, "rms_norm_eps", 1e-6)
        norm_cls = type(base.norm)
        self.norm_h = norm_cls(d, eps=eps)
        self.norm_e = norm_cls(d, eps=eps)
        self.proj = nn.Linear(2 * d, d, bias=False)
        self.block = type(base.layers[-1])(self.config, 0)
        self.norm_out = norm_cls(d, eps=eps)
        self.rotary = type(base.rotary_emb)(self.config)

    def init_from(self, target_model: nn.Module, init: str = "embed") -> None:
        """Block <- the target's last layer, Norm_out <- its final norm, W per `init`."""
        if init not in INITS:
            raise SpecScopeError(f"unknown head initialisation '{init}' (choose from {', '.join(INITS)})")
        base = _decoder(target_model)
        d = self.config.hidden_size
        with torch.no_grad():
            self.block.load_state_dict(base.layers[-1].state_dict())
            self.norm_out.load_state_dict(base.norm.state_dict())
            self.norm_h.weight.fill_(1.0)
            self.norm_e.weight.fill_(1.0)
            eye = torch.eye(d, dtype=self.proj.weight.dtype)
            zero = torch.zeros_like(eye)
            self.proj.weight.copy_(torch.cat([eye, zero] if init == "hidden" else [zero, eye], 1))

    def step(self, state: torch.Tensor, emb: torch.Tensor, positions: torch.Tensor,
             mask: torch.Tensor, cache) -> torch.Tensor:
        """state, emb: [1, n, d]; positions [1, n]; mask: additive [1, 1, n, cached + n].
        Returns s [1, n, d] (what the LM head reads, and what the next step is fed)."""
        x = self.proj(torch.cat([self.norm_h(state), self.norm_e(emb)], -1))
        cos_sin = self.rotary(x, positions)
        out = self.block(x, attention_mask=mask.to(x.dtype), position_ids=positions,
                         use_cache=cache is not None, position_embeddings=cos_sin,
                         **with_cache(self.block, cache))
        if isinstance(out, tuple):  # older transformers return (hidden, ...)
            out = out[0]
        return self.norm_out(out)

    def new_cache(self):
        from transformers import DynamicCache

        return DynamicCache(config=self.config)

    def param_count(self) -> int:
        """Its weights, quantized or packed linears counted at their full shapes."""
        from specscope.core.quant import weight_count

        return weight_count(self)


def additive(allowed: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """bool [q, kv] -> additive [1, 1, q, kv]: 0 where allowed, a large negative elsewhere."""
    mask = torch.zeros(allowed.shape, dtype=dtype)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)[None, None]


def causal_after(cached: int, n: int) -> torch.Tensor:
    """n new queries after `cached` cached keys, causal among themselves."""
    return torch.cat([torch.ones(n, cached, dtype=torch.bool),
                      torch.ones(n, n, dtype=torch.bool).tril()], 1)


def cache_len(cache) -> int:
    return int(cache.get_seq_length()) if cache is not None else 0


# ---- the artifact -------------------------------------------------------------------------------

@dataclass
class MTPArtifact:
    head: MTPHead
    ranking: torch.Tensor  # [V] int64, token ids in rank order (VocabTrim's)
    k: int  # default number of ranked rows the head drafts over
    meta: dict


def artifact_path(profile_name: str) -> Path:
    from specscope.core.embedded import cache_dir

    return cache_dir() / "mtp" / f"{profile_name}.safetensors"


def save_artifact(path: str | os.PathLike, head: MTPHead, ranking: torch.Tensor, k: int,
                  target: CachedLM, target_source: str, tokenizer, profile_name: str,
                  training: dict, dtype: torch.dtype = torch.bfloat16) -> Path:
    """Write atomically (core/files.py: a temp file in the same folder, then rename)."""
    from safetensors.torch import save_file

    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"head.{name}": t.detach().to("cpu", dtype).contiguous()
               for name, t in head.state_dict().items() if not name.startswith("rotary.")}
    tensors["ranking"] = ranking.detach().cpu().long().contiguous()
    meta = {"format": FORMAT, "profile": profile_name, "k": int(k),
            "target": model_fingerprint(target, target_source),
            "tokenizer_sha256": tokenizer_checksum(tokenizer),
            "layer_class": type(head.block).__name__, "training": training}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"specscope": json.dumps(meta)}))
    return path


def read_meta(path: str | os.PathLike) -> tuple[dict, dict]:
    """(metadata, tensors) of an artifact, or a one-line refusal."""
    return read_artifact(path, FORMAT, "MTP head")


def load_artifact(path: str | os.PathLike, target: CachedLM, target_source: str,
                  tokenizer=None) -> MTPArtifact:
    """Read an artifact and refuse it unless it was trained on this target and vocabulary."""
    meta, tensors = read_meta(path)
    mine = model_fingerprint(target, target_source)
    theirs = meta.get("target", {})
    for key in IDENTITY_KEYS:
        if theirs.get(key) != mine.get(key):
            raise SpecScopeError(f"{path}: an MTP head trained for another target "
                                 f"({theirs.get('source')}, {key} differs); retrain it with "
                                 f"`specscope mtp train`")
    if tokenizer is not None and meta.get("tokenizer_sha256") != tokenizer_checksum(tokenizer):
        raise SpecScopeError(f"{path}: an MTP head trained with another tokenizer (checksum differs)")
    head = MTPHead(target.model)
    state = {name[len("head."):]: t for name, t in tensors.items() if name.startswith("head.")}
    missing, unexpected = head.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.startswith("rotary.")]
    if missing or unexpected:
        raise SpecScopeError(f"{path}: MTP head weights do not fit this target "
                             f"({len(missing)} missing, {len(unexpected)} unexpected)")
    dtype = next(target.model.parameters()).dtype
    head = head.to(device=target.device, dtype=dtype).eval()
    ranking = tensors["ranking"].long()
    if len(ranking) != target.vocab_size:
        raise SpecScopeError(f"{path}: ranking covers {len(ranking)} tokens, the target has "
                             f"{target.vocab_size}")
    return MTPArtifact(head, ranking, int(meta["k"]), meta)
