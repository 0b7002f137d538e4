"""Training FastMTP's head on the target's own output (self-distillation).

Data: the target's greedy answers to calibration prompts (`self_distill`, left-padded batches;
optionally more answers sampled from the target, for more of its own text per prompt), then the target's final hidden states over prompt + answer in one teacher-forced pass
(`teacher_hidden`). Only answer tokens are labels: they are what the target itself produces.

Loss (FastMTP): sum_j beta^(j-1) CE(step j, the target's own token). The steps are unrolled as
they run when drafting: step j at origin t reads the head's own state from step j-1 and sits at
position t+j-1, attending to the committed entries 0..t (step 1) and to its own chain's earlier
steps, exactly like the drafter's cache (entries of step 1 at every origin, then one entry per
later step). The token fed at step j is the target's own x_{t+j}, not the head's argmax: a
drafted chain only counts while it matches the target, so step j's prediction matters exactly
when the head drafted x_{t+j}; teacher tokens train that case and nothing else.

Labels come in two kinds (`labels=`):
- "target" (the default): the target's own next-token distribution at every position, prompt
  included: step j at origin t is pulled towards softmax(LMHead(h_{t+j})) over the kept rows
  (KL divergence; the target computed it in the teacher-forced pass, so it costs one matmul).
  A distribution says more than its argmax (how sure the target is, and its runners-up), and the
  prompt's positions become training data too (several times the labelled positions of the
  answers alone, where prompts are longer than answers). A prompt with several answers (--samples) is trained on
  once: its further answers start their loss at the answer (`Sample.loss_from`; the prompt is
  their context), and its hidden states are computed once (`teacher_hidden_shared`).
- "tokens": cross-entropy against the target's greedy answer tokens only (FastMTP's recipe).

Either way the distributions and tokens are restricted to the ranking's first K rows: the head
drafts over those rows only. The greedy chain statistics always count answer tokens (an estimate
of greedy acceptance).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from specscope.core.lm import drop_last, with_cache
from specscope.core.mtp import MTPHead, additive


@dataclass
class Sample:
    ids: list[int]  # prompt + answer
    answer_start: int  # index of the first answer token
    hidden: torch.Tensor | None = None  # [T, d], the target's final hidden states
    prompt_len: int = 0  # the prompt's tokens (samples of one prompt share its hidden states)
    loss_from: int = 0  # origins before this are context only (a prompt another sample trains on)


@torch.inference_mode()
def self_distill(model, prompts: list[list[int]], max_new_tokens: int, eos_ids: set[int],
                 pad_id: int, temperature: float = 0.0, seed: int = 0,
                 on_step=None) -> list[list[int]]:
    """The target's answers to a batch of prompts (left-padded, core/greedy.py): greedy, or
    sampled at `temperature` (seeded: more of the target's own text from the same prompts), each
    cut after its first EOS (kept: the head should learn to predict the end too); whatever the
    model's own generation_config asks for. on_step(1) after each decoding step."""
    from specscope.core.greedy import generate_answers

    return generate_answers(model, prompts, max_new_tokens, eos_ids, pad_id, temperature, seed,
                            on_step)


@torch.inference_mode()
def teacher_hidden(model, ids: list[int]) -> torch.Tensor:
    """The target's final hidden states [T, d] over ids, in one pass."""
    device = next(model.parameters()).device
    return model.base_model(input_ids=torch.tensor([ids], device=device)).last_hidden_state[0].clone()


@torch.inference_mode()
def teacher_hidden_shared(model, prompt: list[int], tails: list[list[int]]) -> list[torch.Tensor]:
    """teacher_hidden(prompt + tail) for each tail, the prompt run once: each tail continues
    from the prompt's KV cache, which is cropped back to the prompt after it (several answers to
    one prompt cost the prompt once)."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    body = model.base_model
    cache = DynamicCache(config=model.config)
    head = body(input_ids=torch.tensor([prompt], device=device), use_cache=True,
                **with_cache(body, cache)).last_hidden_state[0]
    states = []
    for tail in tails:
        if not tail:
            states.append(head.clone())
            continue
        more = body(input_ids=torch.tensor([tail], device=device), use_cache=True,
                    **with_cache(body, cache)).last_hidden_state[0]
        states.append(torch.cat([head, more]))
        try:
            drop_last(cache, len(tail))  # drop the answer again
        except (RuntimeError, ValueError):  # a cache that cannot roll back (a full sliding window)
            cache = DynamicCache(config=model.config)
            body(input_ids=torch.tensor([prompt], device=device), use_cache=True,
                 **with_cache(body, cache))
    return states


def unroll_mask(n: int, first: int, step: int) -> torch.Tensor:
    """bool [n-first, n + (step-1)*(n-first)]: step `step`'s query at origin t (t >= first) sees
    step 1's entries 0..t and its own chain's entries at steps 2..step (keys are [step 1 at
    every origin | step 2 | ... | step `step`, at origins first..n-1])."""
    m = n - first
    blocks = [torch.ones(n, n, dtype=torch.bool).tril()[first:]]
    blocks += [torch.eye(m, dtype=torch.bool)] * (step - 1)
    return torch.cat(blocks, 1)


def label_rows(ranking: torch.Tensor, k: int, vocab: int) -> torch.Tensor:
    """[V] row of each token id among the first k ranked rows, -100 outside them."""
    rows = torch.full((vocab,), -100, dtype=torch.long)
    rows[ranking[:k]] = torch.arange(k)
    return rows


def unrolled_logits(head: MTPHead, embed: torch.nn.Module, hidden: torch.Tensor, ids: list[int],
                    depth: int, weight: torch.Tensor, first: int = 0) -> list[torch.Tensor]:
    """Logits [N-first, K] of steps 1..depth at origins t = first..N-1 (N = T-2), over `weight`'s
    rows; step j at origin t predicts x_{t+j+1}. Step 1 runs at every origin (earlier ones are
    the context later ones attend to); logits and later steps only from `first` on."""
    T = len(ids)
    n = T - 2
    device = hidden.device
    padded = torch.tensor(ids + [0] * depth, device=device)
    cache = head.new_cache()
    state = hidden[:n][None].to(head.proj.weight.dtype)
    out = []
    for j in range(1, depth + 1):
        lo = 0 if j == 1 else first
        emb = embed(padded[lo + j:n + j][None]).to(state.dtype)  # x_{t+j}
        positions = torch.arange(lo + j - 1, n + j - 1, device=device)[None]
        mask = unroll_mask(n, 0, 1) if j == 1 else unroll_mask(n, first, j)
        state = head.step(state, emb, positions, additive(mask).to(device), cache)
        if j == 1:
            state = state[:, first:]
        out.append(F.linear(state[0], weight.to(state.dtype)).float())
    return out


def step_labels(ids: list[int], answer_start: int, depth: int, rows: torch.Tensor,
                first: int = 0) -> list[torch.Tensor]:
    """Per step j: [N-first] label rows (x_{t+j+1} mapped to a kept row), -100 where there is none:
    past the end, inside the prompt, or outside the kept rows."""
    T = len(ids)
    n = T - 2
    tok = torch.tensor(ids + [0] * (depth + 1))
    labels = []
    for j in range(1, depth + 1):
        at = torch.arange(first, n) + j + 1
        lab = rows[tok[at]]
        lab[(at >= T) | (at < answer_start)] = -100
        labels.append(lab)
    return labels


LABELS = ("target", "tokens")


def corpus_chunks(ids: list[int], chunk: int, limit: int | None = None) -> list[list[int]]:
    """Token ids cut into consecutive pieces of `chunk` (the last may be shorter; pieces under 3
    tokens, which hold no label, are dropped), at most `limit` tokens in all."""
    if limit is not None:
        ids = ids[:max(limit, 0)]
    return [ids[i:i + chunk] for i in range(0, len(ids), chunk) if len(ids[i:i + chunk]) >= 3]


def target_distributions(hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """[T, K] the target's next-token distribution at every position, over `weight`'s rows."""
    with torch.no_grad():
        return torch.softmax(F.linear(hidden.float(), weight.float()), -1)


def soft_terms(logits: list[torch.Tensor], probs: torch.Tensor, first: int) -> list[torch.Tensor | None]:
    """Per step j: mean KL(target || head) over origins t >= first where h_{t+j} exists."""
    T = probs.shape[0]
    out = []
    for j, lg in enumerate(logits, 1):
        m = min(lg.shape[0], T - j - first)  # origin t uses the target's state at t + j
        if m <= 0:
            out.append(None)
            continue
        p = probs[first + j:first + j + m]
        logq = torch.log_softmax(lg[:m], -1)
        out.append((p * (torch.log(p.clamp_min(1e-30)) - logq)).sum(-1).mean())
    return out


@dataclass
class StepStats:
    loss: float
    tokens: int  # labelled positions at step 1
    chain_hits: list[int]  # origins where steps 1..j were all the target's token, per j
    chain_seen: list[int]  # origins with a label at step j, per j


def sequence_loss(head: MTPHead, embed, weight: torch.Tensor, rows: torch.Tensor, sample: Sample,
                  depth: int, beta: float, labels: str = "tokens") -> tuple[torch.Tensor | None, StepStats]:
    """sum_j beta^(j-1) loss(step j) for one sequence (see the module's text for `labels`), and
    its greedy chain hits on the answer tokens."""
    if len(sample.ids) < 3:
        return None, StepStats(0.0, 0, [0] * depth, [0] * depth)
    if labels == "target":  # every position has a label, from the sample's own text on
        first = max(0, min(sample.loss_from, len(sample.ids) - 3))
    else:
        first = max(0, min(sample.answer_start - depth - 1, len(sample.ids) - 3))  # first with a label
    logits = unrolled_logits(head, embed, sample.hidden, sample.ids, depth, weight, first)
    hard = [lab.to(weight.device)
            for lab in step_labels(sample.ids, sample.answer_start, depth, rows, first)]
    if labels == "target":
        terms = soft_terms(logits, target_distributions(sample.hidden, weight), first)
    else:
        terms = [F.cross_entropy(lg[lab != -100], lab[lab != -100]) if (lab != -100).any() else None
                 for lg, lab in zip(logits, hard)]
    total = None
    for j, term in enumerate(terms):
        if term is not None:
            total = beta ** j * term if total is None else total + beta ** j * term
    hits, seen = [], []
    chain = torch.ones_like(hard[0], dtype=torch.bool)
    with torch.no_grad():
        for lg, lab in zip(logits, hard):
            ok = lab != -100
            chain = chain & (lg.argmax(-1) == lab)
            hits.append(int((chain & ok).sum()))
            seen.append(int(ok.sum()))
    n1 = len(logits[0]) if labels == "target" else (seen[0] if seen else 0)
    return total, StepStats(float(total.detach()) if total is not None else 0.0, n1, hits, seen)


@torch.no_grad()
def evaluate(head: MTPHead, embed, weight, rows, samples: list[Sample], depth: int,
             beta: float, labels: str = "tokens", tick=None) -> tuple[float, list[float]]:
    """Mean loss and, per step j, the share of labelled origins whose greedy chain 1..j all
    match the target's tokens (an estimate of greedy acceptance at draft position j).
    tick(): after each sample (a long evaluation's heartbeat)."""
    losses, hits, seen = [], [0] * depth, [0] * depth
    for s in samples:
        loss, st = sequence_loss(head, embed, weight, rows, s, depth, beta, labels)
        if loss is not None:
            losses.append(float(loss))
        hits = [a + b for a, b in zip(hits, st.chain_hits)]
        seen = [a + b for a, b in zip(seen, st.chain_seen)]
        if tick is not None:
            tick()
    mean = sum(losses) / len(losses) if losses else float("nan")
    return mean, [h / s if s else 0.0 for h, s in zip(hits, seen)]
