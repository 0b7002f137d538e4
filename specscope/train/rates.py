"""The rates `mtp train --minutes` plans with (train/plan.py), measured on this machine on the
loaded pair in about a minute (78 s on a 2-core AVX2 CPU), and cached beside the machine's pass
costs (core/machine.py's cache folder), per machine, models, dtype and batch: a second run plans
at once.

- answers: one batch of `batch` real prompts (their last RATE_PROMPT_TOKENS tokens) through the
  same generator the self-distillation uses (core/greedy.py), a few decoding steps: its first step is the prompt read (prefill
  tokens a second), the rest the decoding step of a full batch;
- the same for the drafter, when sampled answers are drafted by it;
- hidden states: one teacher-forced pass over the longest prompt (its last RATE_SEQUENCE_TOKENS)
  and its measured answer;
- training: two steps of a fresh head over that sequence (forward, backward, optimizer).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from specscope.train.plan import Rates

STEPS = 6  # decoding steps a rate measurement runs
# each measured prompt's last tokens only: a batch of 16 whole prompts (up to 768 tokens each)
# took over 15 minutes to read in bfloat16 on an AVX2 CPU, most of a 30-minute budget; the
# rates are per token, and the first stage's real time corrects them (budget.corrected)
RATE_PROMPT_TOKENS = 64
# the teacher-forced pass and the training steps over a longer sequence: per token they cost
# less the longer it is (fixed costs a pass), and 64 tokens measured them at half their rate
RATE_SEQUENCE_TOKENS = 256


def rates_path(key: list) -> Path:
    from specscope.core.embedded import cache_dir
    from specscope.core.machine import machine_info

    digest = hashlib.sha256(json.dumps([machine_info().key, key]).encode()).hexdigest()[:16]
    return cache_dir() / "machine" / f"mtp-rates-{digest}.json"


def load_rates(path: Path) -> Rates | None:
    try:
        return Rates(**json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def save_rates(path: Path, rates: Rates) -> None:
    from specscope.train.caches import write_json

    write_json(path, asdict(rates))


def _generation(model, prompts: list[list[int]], pad: int, temperature: float) -> tuple[float, float, list]:
    """(prefill tokens a second, seconds a decoding step, the answers) of one batch."""
    from specscope.core.greedy import generate_answers

    stamps = []
    t0 = time.perf_counter()
    answers = generate_answers(model, prompts, STEPS, set(), pad, temperature, 0,
                               lambda _: stamps.append(time.perf_counter()))
    first = stamps[0] - t0
    steps = [b - a for a, b in zip(stamps, stamps[1:])] or [first]
    width = max(map(len, prompts))
    return len(prompts) * width / max(first, 1e-6), sorted(steps)[len(steps) // 2], answers


def measure_rates(model, drafter, prompts: list[list[int]], pad: int, batch: int,
                  temperature: float, dtype: str) -> Rates:
    """The rates on the loaded target (and drafter, or None); `prompts`: real prompts, the
    first `batch` of which are measured."""
    from specscope.core.mtp import MTPHead
    from specscope.core.mtp_train import Sample, label_rows, sequence_loss, teacher_hidden

    batch_prompts = [p[-RATE_PROMPT_TOKENS:] for p in prompts[:batch]]
    prefill, step, answers = _generation(model, batch_prompts, pad, 0.0)
    d_prefill = d_step = None
    if drafter is not None:
        d_prefill, d_step, _ = _generation(drafter, batch_prompts, pad, temperature)
    longest = max(range(len(batch_prompts)), key=lambda i: len(prompts[i]))
    prompt = prompts[longest][-RATE_SEQUENCE_TOKENS:]
    ids = prompt + answers[longest]
    t0 = time.perf_counter()
    hidden = teacher_hidden(model, ids)
    hidden_tps = len(ids) / max(time.perf_counter() - t0, 1e-6)

    head = MTPHead(model).to(hidden.device, torch.float32)
    head.init_from(model, "embed")
    vocab = model.get_input_embeddings().weight.shape[0]
    k = min(8192, vocab)
    rows = label_rows(torch.arange(vocab), k, vocab).to(hidden.device)
    weight = model.get_output_embeddings().weight.detach()[:k]
    embed = model.get_input_embeddings()
    opt = torch.optim.AdamW([p for p in head.parameters() if p.requires_grad], lr=1e-6)
    amp = torch.autocast(hidden.device.type, dtype=model.dtype, enabled=dtype != "float32")
    sample = Sample(ids, len(prompt), hidden)
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        with amp:
            loss, st = sequence_loss(head, embed, weight, rows, sample, 3, 0.6, "target")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        best = min(best, time.perf_counter() - t0)
    return Rates(prefill_tps=prefill, step_s=step, hidden_tps=hidden_tps,
                 train_tps=max(st.tokens, 1) / max(best, 1e-6), batch=batch,
                 drafter_prefill_tps=d_prefill, drafter_step_s=d_step,
                 prompt_tokens=sum(map(len, prompts)) / len(prompts))
