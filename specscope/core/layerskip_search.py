"""Which layers should Draft & Verify skip? A seeded search scored on calibration prompts.

Calibration: the target continues each prompt greedily. Scoring a skip set takes one
teacher-forced pass of the skipped-layer model over those sequences: where its argmax equals the
target's token it would have drafted that token, and a greedy draft started at position t is
accepted for exactly the run of consecutive matches from t. For draft length k,

    score = (mean over t of min(run_t, k) + 1) / (k * r + 1)

tokens per step over the cost of a step, in target passes: k drafted tokens at r each (r = the
weights the skipped model reads over the target's) plus one verification pass. The score keeps
the best k. The search (the paper uses Bayesian optimisation) is plain and seeded: random skip
sets, then hill climbing by adding, removing or moving one layer. The first and last layers are
never skipped. The result is cached per model in cache_dir()/layerskip/<fingerprint>.json.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from specscope.core.drafters.layerskip import SkipLM, decoder_layers, default_skip
from specscope.core.embedded import cache_dir
from specscope.core.files import atomic_write

Progress = Callable[[str, float, float | None], None]  # (stage, done, total)


@dataclass
class SearchResult:
    skip: list[int]
    score: float  # expected tokens per target-pass of cost (see the module docstring)
    draft_len: int  # the draft length that scored best
    tau: float  # expected tokens per step at that length (greedy, no early exit)
    default_score: float  # the same score for default_skip(n_layers), for comparison
    n_layers: int
    seed: int
    evaluations: int
    tried: list[dict] = field(default_factory=list)  # the best few: skip, score, draft_len
    # the calibration prompts searched on: file, split, ids and text digests (None: not recorded)
    used_prompts: dict | None = None


@dataclass
class Calibration:
    sequences: list[list[int]]  # prompt + the target's greedy continuation
    starts: list[int]  # where each continuation begins


@torch.inference_mode()
def calibrate(model: torch.nn.Module, prompts: list[list[int]], new_tokens: int = 32,
              eos_ids: set[int] = frozenset(), progress: Progress | None = None) -> Calibration:
    """The target's own greedy continuations of the prompts (the drafts' reference)."""
    full = SkipLM(model, [])
    head = model.get_output_embeddings()
    sequences, starts = [], []
    for n, prompt in enumerate(prompts):
        if progress:
            progress("calibrating: the target continues each prompt", n, len(prompts))
        full.reset()
        seq = list(prompt)
        for _ in range(new_tokens):
            token = int(head(full.forward(seq, 1)[-1]).argmax())
            seq.append(token)
            if token in eos_ids:
                break
        sequences.append(seq)
        starts.append(len(prompt))
    return Calibration(sequences, starts)


@torch.inference_mode()
def match_runs(model: torch.nn.Module, skip: list[int], calib: Calibration) -> list[int]:
    """For every continuation position t: how many consecutive target tokens from t the skipped
    model predicts (its greedy draft started at t would be accepted that far)."""
    lm = SkipLM(model, skip)
    head = model.get_output_embeddings()
    runs: list[int] = []
    for seq, start in zip(calib.sequences, calib.starts):
        lm.reset()
        n = len(seq) - start
        pred = head(lm.forward(seq[:-1], n)).argmax(-1).tolist()
        run, here = 0, []
        for hit in reversed([p == x for p, x in zip(pred, seq[start:])]):
            run = run + 1 if hit else 0
            here.append(run)
        runs += here[::-1]
    return runs


def score_runs(runs: list[int], r: float, max_k: int = 8) -> tuple[float, int, float]:
    """(best score, its draft length, its tokens per step) over draft lengths 1..max_k."""
    best = (0.0, 1, 1.0)
    for k in range(1, max_k + 1):
        tau = sum(min(x, k) for x in runs) / max(len(runs), 1) + 1
        score = tau / (k * r + 1)
        if score > best[0]:
            best = (score, k, tau)
    return best


def search(model: torch.nn.Module, calib: Calibration, seed: int = 0, budget: int = 24,
           max_k: int = 8, progress: Progress | None = None) -> SearchResult:
    """Best skip set found in `budget` evaluations; the same seed gives the same result."""
    n = len(decoder_layers(model))
    inner = list(range(1, n - 1))
    if not inner:
        raise ValueError(f"a model with {n} layers has no inner layer to skip")
    rng = random.Random(seed)
    full_params = SkipLM(model, []).read_params()
    scores: dict[tuple[int, ...], tuple[float, int, float]] = {}
    progress = progress or (lambda *a: None)

    def evaluate(skip) -> tuple[float, int, float]:
        key = tuple(sorted(skip))
        if key not in scores:
            lm = SkipLM(model, list(key))
            scores[key] = score_runs(match_runs(model, list(key), calib),
                                     lm.read_params() / full_params, max_k)
            progress("searching layers to skip", len(scores), budget)
        return scores[key]

    default = tuple(x for x in default_skip(n) if x in inner) or (inner[len(inner) // 2],)
    best = default
    evaluate(best)
    for _ in range(max(1, budget // 3)):  # random sets: a quarter to a half of the inner layers
        size = rng.randint(max(1, len(inner) // 4), max(1, len(inner) // 2))
        cand = tuple(sorted(rng.sample(inner, size)))
        if evaluate(cand)[0] > scores[best][0]:
            best = cand
    stale = 0
    while len(scores) < budget and stale < 4 * len(inner):  # hill climbing from the best
        cand = _neighbour(best, inner, rng)
        known = cand in scores
        if evaluate(cand)[0] > scores[best][0]:
            best, stale = cand, 0
        else:
            stale += 1 if known else 0
    score, k, tau = scores[best]
    ranked = sorted(scores.items(), key=lambda kv: -kv[1][0])[:5]
    return SearchResult(list(best), score, k, tau, scores[default][0], n, seed, len(scores),
                        [{"skip": list(s), "score": round(v[0], 4), "draft_len": v[1]}
                         for s, v in ranked])


def _neighbour(skip: tuple[int, ...], inner: list[int], rng: random.Random) -> tuple[int, ...]:
    """Add, remove or move one skipped layer (never leaving the set empty)."""
    kept = [i for i in inner if i not in skip]
    moves = ["add"] * bool(kept) + ["remove"] * (len(skip) > 1) + ["move"] * bool(kept and skip)
    move = rng.choice(moves)
    s = set(skip)
    if move in ("remove", "move"):
        s.discard(rng.choice(sorted(s)))
    if move in ("add", "move"):
        s.add(rng.choice(kept))
    return tuple(sorted(s))


def fingerprint(model: torch.nn.Module) -> str:
    """Names a model by its shape and a sample of its weights (rounded to bfloat16, so the same
    model loaded in any dtype gets the same name)."""
    cfg = model.config
    digest = hashlib.sha256()
    shape = [getattr(cfg, a, None) for a in ("model_type", "num_hidden_layers", "hidden_size",
                                              "intermediate_size", "vocab_size")]
    digest.update(json.dumps(shape).encode())
    params = list(model.parameters())
    for p in params[:: max(1, len(params) // 8)]:
        sample = p.detach().flatten()[:256].to(torch.bfloat16).float().cpu()
        digest.update(sample.numpy().tobytes())
    layers = getattr(cfg, "num_hidden_layers", 0)
    return f"{cfg.model_type}-{layers}l-{digest.hexdigest()[:16]}"


def result_path(model: torch.nn.Module) -> Path:
    return cache_dir() / "layerskip" / f"{fingerprint(model)}.json"


def save_result(model: torch.nn.Module, result: SearchResult) -> Path:
    """Write the result as JSON, atomically (core/files.py)."""
    path = result_path(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(asdict(result), indent=1)))
    return path


def load_result(model: torch.nn.Module) -> SearchResult | None:
    """The cached search result for this model, or None (missing or unreadable)."""
    try:
        data = json.loads(result_path(model).read_text())
        result = SearchResult(**data)
    except (OSError, ValueError, TypeError):
        return None
    n = len(decoder_layers(model))
    if result.n_layers != n or not all(0 <= i < n for i in result.skip):
        return None
    return result


def best_known_skip(model: torch.nn.Module) -> list[int]:
    """The cached search result, else the default (every other layer of the middle half)."""
    result = load_result(model)
    return result.skip if result else default_skip(len(decoder_layers(model)))
