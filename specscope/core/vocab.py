"""VocabTrim: the drafter's LM head restricted to the tokens the target actually produces.

A calibration counts the target's tokens; the ranking puts the tokens the tokenizer needs to stop
(EOS, special tokens) first, then every other token by count (ties by id). Any K drafts over the
K first ranked rows; verification stays in the full vocabulary, so output stays exact.

The artifact is one safetensors file: `head` (the K ranked rows of the drafter's head), `ranking`
(the full ranking, so any K up to the vocabulary can be chosen later without recalibrating) and a
JSON metadata record (K, profile, identities and checksums, calibration settings, coverage).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from specscope.core.errors import SpecScopeError
from specscope.core.files import atomic_write, read_artifact
from specscope.core.lm import CachedLM

FORMAT = "specscope-vocabtrim/1"


def count_tokens(sequences: Iterable[Iterable[int]]) -> Counter:
    counts: Counter = Counter()
    for seq in sequences:
        counts.update(int(t) for t in seq)
    return counts


def rank_tokens(counts: Counter, vocab_size: int, always_keep: Iterable[int] = ()) -> list[int]:
    """Every id in [0, vocab_size): always-kept ids first, then by count (desc), then by id."""
    keep = sorted({int(t) for t in always_keep if 0 <= int(t) < vocab_size})
    keep_set = set(keep)
    rest = sorted((t for t in range(vocab_size) if t not in keep_set),
                  key=lambda t: (-counts.get(t, 0), t))
    return keep + rest


def coverage(counts: Counter, kept: Iterable[int]) -> float:
    total = sum(counts.values())
    return sum(counts.get(t, 0) for t in set(kept)) / total if total else 0.0


def special_ids(tokenizer) -> list[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for name in ("eos_token_id", "bos_token_id", "pad_token_id"):
        if getattr(tokenizer, name, None) is not None:
            ids.add(int(getattr(tokenizer, name)))
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    ids.update(int(i) for i, tok in added.items() if getattr(tok, "special", False))
    return sorted(ids)


def model_fingerprint(lm: CachedLM, source: str) -> dict:
    """Identity of a model: its source, shape, and a checksum of sampled head rows in bfloat16
    (the same whether the model was loaded in float32 or bfloat16)."""
    w = lm.head.weight
    idx = torch.linspace(0, w.shape[0] - 1, steps=min(64, w.shape[0])).long().to(w.device)
    sample = w[idx].detach().to(torch.bfloat16).view(torch.int16).cpu().numpy().tobytes()
    cfg = lm.config
    return {
        "source": source,
        "model_type": getattr(cfg, "model_type", ""),
        "layers": int(getattr(cfg, "num_hidden_layers", 0)),
        "hidden": lm.hidden_size,
        "vocab": lm.vocab_size,
        "head_sha256": hashlib.sha256(sample).hexdigest(),
    }


def tokenizer_checksum(tokenizer) -> str:
    items = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


@dataclass
class TrimmedVocab:
    ranking: torch.Tensor  # [V] int64, rank order
    k: int
    head: torch.Tensor  # [k, hidden], the drafter's head rows ranking[:k]
    meta: dict

    @property
    def kept_ids(self) -> torch.Tensor:
        return self.ranking[: self.k]

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically: a temp file in the same folder, then rename."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: save_file(
            {"ranking": self.ranking.cpu().contiguous(), "head": self.head.detach().cpu().contiguous()},
            tmp, metadata={"specscope": json.dumps(self.meta)}))
        return path


def read_trimmed(path: str | os.PathLike) -> TrimmedVocab:
    meta, tensors = read_artifact(path, FORMAT, "trimmed head")
    if not {"ranking", "head"} <= tensors.keys():
        raise SpecScopeError(f"{Path(path).expanduser()}: not a specscope trimmed head (KeyError)")
    return TrimmedVocab(tensors["ranking"].long(), int(meta["k"]), tensors["head"], meta)


def load_trimmed(path, profile, drafter: CachedLM, target: CachedLM | None = None,
                 tokenizer=None) -> TrimmedVocab:
    """Read an artifact and refuse it unless it was made for this drafter, target and vocabulary."""
    vocab = read_trimmed(path)
    meta = vocab.meta
    mine = model_fingerprint(drafter, profile.drafter or "")
    theirs = meta.get("drafter", {})
    for key in ("model_type", "layers", "hidden", "vocab", "head_sha256"):
        if theirs.get(key) != mine.get(key):
            raise SpecScopeError(
                f"{path}: made for another drafter ({theirs.get('source')}, {key} differs); "
                f"this profile's drafter is {profile.drafter}")
    if target is not None:
        t_mine = model_fingerprint(target, profile.target)
        t_theirs = meta.get("target", {})
        for key in ("model_type", "layers", "hidden", "head_sha256"):
            if t_theirs.get(key) != t_mine.get(key):
                raise SpecScopeError(f"{path}: made for another target ({t_theirs.get('source')}); "
                                     f"this profile's target is {profile.target}")
    if tokenizer is not None and meta.get("tokenizer_sha256") != tokenizer_checksum(tokenizer):
        raise SpecScopeError(f"{path}: made for another vocabulary (tokenizer checksum differs)")
    if len(vocab.ranking) != drafter.vocab_size:
        raise SpecScopeError(f"{path}: ranking covers {len(vocab.ranking)} tokens, "
                             f"the drafter's head has {drafter.vocab_size}")
    return vocab


def build_trimmed(counts: Counter, k: int, drafter: CachedLM, target: CachedLM, tokenizer,
                  profile_name: str, drafter_source: str, target_source: str,
                  calibration: dict) -> TrimmedVocab:
    vocab_size = drafter.vocab_size
    if not 1 <= k <= vocab_size:
        raise SpecScopeError(f"--top-k must be between 1 and the vocabulary size {vocab_size}, got {k}")
    keep = special_ids(tokenizer)
    ranking = rank_tokens(counts, vocab_size, keep)
    ranking_t = torch.tensor(ranking, dtype=torch.long)
    head = drafter.head.weight.detach()[ranking_t[:k].to(drafter.head.weight.device)]
    meta = {
        "format": FORMAT,
        "k": k,
        "profile": profile_name,
        "drafter": model_fingerprint(drafter, drafter_source),
        "target": model_fingerprint(target, target_source),
        "tokenizer_sha256": tokenizer_checksum(tokenizer),
        "always_kept": keep,
        "calibration": calibration,
        "calibration_tokens": sum(counts.values()),
        "distinct_tokens": len(counts),
        "coverage": coverage(counts, ranking[:k]),
    }
    return TrimmedVocab(ranking_t, k, head, meta)
