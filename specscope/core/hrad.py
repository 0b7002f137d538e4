"""H-RAD (SpecBranch): a small draft-length predictor over the target's own features.

Before a step, the context is ids[:n]; the target's cache covers ids[:n-1], so its hidden state
h_{n-2} (what predicted ids[n-1]; the final hidden state, after its final norm: what its LM head
reads) and the last committed token ids[n-1] are known for free. The predictor reads

    x = [h_{n-2} / rms ; e(ids[n-1]) / rms]         (e: the target's input embedding)
    p = softmax(W2 gelu(W1 x))                      over a = 0, 1, ..., cap

the law of `a`, how many of the drafter's next greedy tokens the target accepts (cap: "cap or
more"). SpecBranch's three outcomes come from p (`decide`):

    stop      a = 0 is the likeliest: no draft this step (a plain target step)
    explicit  0 < likeliest < cap: draft exactly the median of p (the largest k with
              P(a >= k) >= 1/2), at least 1
    implicit  a >= cap is the likeliest: draft up to the longest length and let the drafter's
              own confidence end the draft (the cost rule's cut-off, core/adaptive.py)

SpecBranch reads several of the last layers' hidden states; here the final one only, which the
engine already holds after every verification (no extra pass, no hooks on the target's layers).

Labels (`accept_runs`): the drafter's greedy chain from a context matches the target's greedy
continuation for `a` tokens. While the two agree, the drafter's context is the target's text, so
one teacher-forced drafter pass over the target's greedy answer gives every label: a(t) is the
number of consecutive j >= 0 with drafter_next[t + j] == ids[t + j + 1].

The artifact (one safetensors file) holds the predictor's weights and a JSON record: the
identities of target and drafter (model_fingerprint), the tokenizer checksum, the training
settings and the held-apart estimate. A predictor trained for another pair is refused with one
line. The length rule that uses it lives in core/adaptive_learned.py.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from specscope.core.errors import SpecScopeError
from specscope.core.files import atomic_write, read_artifact
from specscope.core.mtp import IDENTITY_KEYS
from specscope.core.vocab import model_fingerprint, tokenizer_checksum

FORMAT = "specscope-hrad/1"
DEFAULT_CAP = 6
DEFAULT_WIDTH = 256
MODES = ("stop", "explicit", "implicit")


class LengthPredictor(nn.Module):
    def __init__(self, hidden: int, cap: int = DEFAULT_CAP, width: int = DEFAULT_WIDTH) -> None:
        super().__init__()
        self.cap = cap
        self.inp = nn.Linear(2 * hidden, width)
        self.out = nn.Linear(width, cap + 1)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """h, e: [..., d] -> logits [..., cap + 1]."""
        x = torch.cat([_unit(h), _unit(e)], -1).to(self.inp.weight.dtype)
        return self.out(nn.functional.gelu(self.inp(x)))


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


def accept_runs(draft_next: list[int], ids: list[int], start: int, cap: int) -> list[int]:
    """Labels for last-committed positions t = start .. len(ids) - 2: a(t) = the number of
    consecutive j >= 0 (at most cap) with draft_next[t + j] == ids[t + j + 1], where
    draft_next[i] is the drafter's greedy token after ids[:i + 1] and ids after `start` are the
    target's greedy text. -1 where the text ends before a mismatch or the cap (unknown)."""
    out = []
    for t in range(start, len(ids) - 1):
        a = 0
        while a < cap and t + a + 1 < len(ids) and draft_next[t + a] == ids[t + a + 1]:
            a += 1
        out.append(a if a == cap or t + a + 1 < len(ids) else -1)
    return out


def decide(probs: torch.Tensor, max_len: int) -> tuple[str, int]:
    """(mode, length) from p over a = 0..cap (the module's text)."""
    probs = probs.float().flatten()
    cap = len(probs) - 1
    best = int(probs.argmax())
    if best == 0:
        return "stop", 0
    if best == cap:
        return "implicit", max_len
    survive = probs.flip(0).cumsum(0).flip(0)  # P(a >= k), k = 0..cap
    median = max(k for k in range(cap + 1) if survive[k] >= 0.5)
    return "explicit", max(1, min(median, max_len))


@dataclass
class HradArtifact:
    predictor: LengthPredictor
    embed: nn.Module  # the target's input embedding (shared, not stored)
    meta: dict

    @torch.no_grad()
    def probs(self, hidden: torch.Tensor, token: int) -> torch.Tensor:
        """p over a = 0..cap from the target's hidden state and the token after it."""
        w = self.embed.weight
        e = self.embed(torch.tensor([token], device=w.device))[0]
        return torch.softmax(self.predictor(hidden.to(w.device)[None], e[None])[0].float(), -1)


def artifact_path(profile_name: str) -> Path:
    from specscope.core.embedded import cache_dir

    return cache_dir() / "hrad" / f"{profile_name}.safetensors"


def train_command(profile_name: str) -> str:
    return f"specscope hrad train -p {profile_name}"


def save_artifact(path: str | os.PathLike, predictor: LengthPredictor, target, target_source: str,
                  drafter, drafter_source: str, tokenizer, profile_name: str,
                  training: dict) -> Path:
    """Write atomically (core/files.py), float32 (the predictor is small)."""
    from safetensors.torch import save_file

    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"predictor.{n}": t.detach().to("cpu", torch.float32).contiguous()
               for n, t in predictor.state_dict().items()}
    meta = {"format": FORMAT, "profile": profile_name, "cap": predictor.cap,
            "width": predictor.inp.out_features,
            "target": model_fingerprint(target, target_source),
            "drafter": model_fingerprint(drafter, drafter_source),
            "tokenizer_sha256": tokenizer_checksum(tokenizer), "training": training}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"specscope": json.dumps(meta)}))
    return path


def read_meta(path: str | os.PathLike) -> tuple[dict, dict]:
    """(metadata, tensors) of an artifact, or a one-line refusal."""
    return read_artifact(path, FORMAT, "draft-length predictor")


def load_artifact(path: str | os.PathLike, target, target_source: str, drafter,
                  drafter_source: str, tokenizer=None,
                  fingerprints: tuple[dict, dict] | None = None) -> HradArtifact:
    """Read a predictor; refuse it unless it was trained for this target, drafter and tokenizer.
    fingerprints: the pair's, taken before quantization (a quantized head has no plain weight)."""
    meta, tensors = read_meta(path)
    retrain = f"retrain it with `{train_command(meta.get('profile', 'PROFILE'))}`"
    fingerprints = fingerprints or (model_fingerprint(target, target_source),
                                    model_fingerprint(drafter, drafter_source))
    for role, mine in zip(("target", "drafter"), fingerprints):
        theirs = meta.get(role, {})
        for key in IDENTITY_KEYS:
            if theirs.get(key) != mine.get(key):
                raise SpecScopeError(f"{path}: a draft-length predictor trained for another {role} "
                                     f"({theirs.get('source')}, {key} differs); {retrain}")
    if tokenizer is not None and meta.get("tokenizer_sha256") != tokenizer_checksum(tokenizer):
        raise SpecScopeError(f"{path}: a draft-length predictor trained with another tokenizer "
                             f"(checksum differs); {retrain}")
    try:
        predictor = LengthPredictor(target.hidden_size, int(meta["cap"]), int(meta["width"]))
        predictor.load_state_dict({n[len("predictor."):]: t for n, t in tensors.items()
                                   if n.startswith("predictor.")})
    except (KeyError, ValueError, RuntimeError) as e:
        raise SpecScopeError(f"{path}: predictor weights do not fit this target "
                             f"({type(e).__name__}); {retrain}") from None
    return HradArtifact(predictor.to(target.device).eval(), target.embed, meta)
