"""The target's own answers to a batch of prompts: the one generator every caller that needs
them goes through (VocabTrim's calibration counts, the MTP head's self-distillation).

Prompts are left-padded into one batch (transformers' `generate` with an attention mask):
decoding is memory-bound, so a batch of 8 answers costs little more than one. Each answer is cut
after its first end-of-sequence token (kept), as the decoding loop would stop.

Greedy means the model's argmax, whatever its `generation_config.json` asks for: `generate`
fills every setting its `generation_config` argument leaves unset (or at its default) from the
model's own generation config, so a model that asks for sampling, top-k or a repetition penalty
would give "greedy" answers that are not its greedy answers. The model's config itself is
swapped for a clean one for the call (`clean_generation_config`), and every setting that shapes
the choice is passed explicitly.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch


@contextmanager
def clean_generation_config(*models):
    """The models' generation configs replaced, for the block, by defaults that keep only their
    special tokens (bos, pad, eos)."""
    from transformers import GenerationConfig

    saved = [m.generation_config for m in models]
    try:
        for m in models:
            old = m.generation_config
            m.generation_config = GenerationConfig(bos_token_id=old.bos_token_id,
                                                   pad_token_id=old.pad_token_id,
                                                   eos_token_id=old.eos_token_id)
        yield
    finally:
        for m, old in zip(models, saved):
            m.generation_config = old


@torch.inference_mode()
def generate_answers(model, prompts: list[list[int]], max_new_tokens: int, eos_ids: set[int],
                     pad_id: int, temperature: float = 0.0, seed: int = 0,
                     on_step: Callable[[int], None] | None = None) -> list[list[int]]:
    """The model's answers to `prompts` (one left-padded batch): greedy, or sampled from its
    distribution at `temperature` (nothing else: no top-k, top-p or penalty; seeded), each cut
    after its first EOS. on_step(1) after each decoding step of the batch."""
    from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

    class Tick(StoppingCriteria):  # never stops anything: reports each step
        def __call__(self, input_ids, scores, **kwargs):
            on_step(1)
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    device = next(model.parameters()).device
    width = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (width - len(p)) + list(p) for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    sample = temperature > 0
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=sample, num_beams=1,
                              temperature=temperature if sample else 1.0, top_k=0, top_p=1.0,
                              repetition_penalty=1.0, eos_token_id=sorted(eos_ids) or None,
                              pad_token_id=pad_id)
    if sample:
        torch.manual_seed(seed)
    with clean_generation_config(model):
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                             stopping_criteria=StoppingCriteriaList([Tick()] if on_step else []))
    answers = []
    for row in out[:, width:].tolist():
        cut = next((i + 1 for i, t in enumerate(row) if t in eos_ids), len(row))
        answers.append(row[:cut])
    return answers
