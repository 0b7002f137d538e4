"""H-RAD's data, fit and held-apart estimate (core/hrad.py says what the predictor is).

An example is one step's start: the last committed position t of a target's greedy answer
(t = answer_start - 1 is the prompt's last token), with features (h_{t-1}, e(ids[t])) and the
label a(t) from one teacher-forced drafter pass (core/hrad.accept_runs).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from specscope.core.hrad import LengthPredictor, accept_runs, decide


@dataclass
class Examples:
    hidden: torch.Tensor  # [N, d] the target's state that predicted the last committed token
    embed: torch.Tensor  # [N, d] that token's input embedding
    labels: torch.Tensor  # [N] a = 0..cap

    def __len__(self) -> int:
        return len(self.labels)


@torch.inference_mode()
def drafter_next(drafter_model, ids: list[int]) -> list[int]:
    """The drafter's greedy next token after every prefix ids[:i + 1], in one pass."""
    device = next(drafter_model.parameters()).device
    return drafter_model(input_ids=torch.tensor([ids], device=device)).logits[0].argmax(-1).tolist()


@torch.inference_mode()
def examples_of(samples, next_tokens: list[list[int]], embed, cap: int) -> Examples:
    """Examples of every answer position with a known label. samples: train/ Samples with
    their target hidden states; next_tokens: drafter_next of each sample's ids."""
    hs, es, labels = [], [], []
    for s, nxt in zip(samples, next_tokens):
        start = max(1, s.answer_start - 1)
        runs = torch.tensor(accept_runs(nxt, s.ids, start, cap))
        at = torch.arange(start, start + len(runs))
        keep = runs >= 0
        if not keep.any():
            continue
        at = at[keep]
        hs.append(s.hidden[at - 1].float().cpu())
        es.append(embed(torch.tensor(s.ids, device=embed.weight.device)[at.to(embed.weight.device)]).float().cpu())
        labels.append(runs[keep])
    d = embed.weight.shape[1]
    if not labels:
        return Examples(torch.empty(0, d), torch.empty(0, d), torch.empty(0, dtype=torch.long))
    return Examples(torch.cat(hs), torch.cat(es), torch.cat(labels))


def fit(data: Examples, cap: int, width: int, seconds: float, lr: float = 1e-3,
        epochs: int | None = None, seed: int = 0, batch: int = 256,
        tick=None) -> tuple[LengthPredictor, dict]:
    """Cross-entropy over a = 0..cap, AdamW, shuffled minibatches, until `epochs` or `seconds`
    (at least one epoch). tick(done_share, loss) after each minibatch."""
    torch.manual_seed(seed)
    model = LengthPredictor(data.hidden.shape[1], cap, width)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    t0, steps, epoch, loss_sum, loss_n = time.perf_counter(), 0, 0, 0.0, 0
    n = len(data)
    while n:
        order = torch.randperm(n)
        loss_sum = loss_n = 0.0
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            loss = F.cross_entropy(model(data.hidden[idx], data.embed[idx]), data.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            loss_sum, loss_n = loss_sum + float(loss.detach()) * len(idx), loss_n + len(idx)
            if tick is not None:
                done = (epoch + (i + len(idx)) / n) / epochs if epochs else (time.perf_counter() - t0) / seconds
                tick(min(1.0, done), loss_sum / loss_n)
        epoch += 1
        if (epochs is not None and epoch >= epochs) or (epochs is None and time.perf_counter() - t0 >= seconds):
            break
    model.eval()
    return model, {"epochs": epoch, "steps": steps, "examples": n,
                   "train_loss": loss_sum / loss_n if loss_n else float("nan"),
                   "seconds": time.perf_counter() - t0}


@torch.no_grad()
def estimate(model: LengthPredictor, data: Examples, max_len: int) -> dict:
    """On held-apart examples: loss, accuracy of a, the rule's outcomes, and per step the
    accepted and the drafted-then-discarded tokens of the rule's lengths against each fixed
    length (an implicit draft counted at the cap: the drafter's confidence cut-off, which ends
    it, is not simulated; accepted counts are lower bounds at the cap)."""
    if not len(data):
        return {"examples": 0}
    logits = model(data.hidden, data.embed)
    probs = torch.softmax(logits, -1)
    cap = model.cap
    a = data.labels
    modes, ks = zip(*(decide(p, max_len) for p in probs))
    k_rule = torch.tensor([min(k, cap) for k in ks])

    def outcome(k: torch.Tensor) -> dict:
        kept = torch.minimum(k, a)
        return {"accepted": round(float(kept.float().mean()), 3),
                "discarded": round(float((k - kept).float().mean()), 3)}

    return {"examples": len(a), "loss": round(float(F.cross_entropy(logits, a)), 4),
            "accuracy": round(float((probs.argmax(-1) == a).float().mean()), 4),
            "label_share": [round(float((a == i).float().mean()), 4) for i in range(cap + 1)],
            "modes": {m: round(modes.count(m) / len(modes), 4) for m in ("stop", "explicit", "implicit")},
            "rule": outcome(k_rule),
            "fixed": {k: outcome(torch.full_like(a, k)) for k in range(1, cap + 1)}}
