"""VocabTrim calibration: count the tokens the target produces (or a corpus contains).

The target's greedy answers are generated in left-padded batches (core/greedy.py): decoding is
memory-bound, so a batch of 8 answers costs little more than one. Prompts are batched by length, so little padding is computed. Only counts matter here: each
answer is cut after its first end-of-sequence token, as the decoding loop would stop.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from specscope.core.events import Finished
from specscope.prompts import Prompt
from specscope.session import Session

OnPrompt = Callable[[int, int], None]  # (prompts done, tokens counted so far)
OnStep = Callable[[int], None]  # one more decoding step of the current batch
BATCH = 8


def count_generated(session: Session, prompts: list[Prompt], max_new_tokens: int,
                    on_prompt: OnPrompt, batch_size: int = BATCH, on_step: OnStep | None = None) -> Counter:
    """Greedy answers of the target, `batch_size` at a time; each answer's tokens are counted."""
    if batch_size <= 1:
        return count_generated_one_by_one(session, prompts, max_new_tokens, on_prompt)
    encoded = sorted((session.encode(p.text) for p in prompts), key=len)
    counts: Counter = Counter()
    done = 0
    for start in range(0, len(encoded), batch_size):
        batch = encoded[start:start + batch_size]
        for answer in greedy_batch(session, batch, max_new_tokens, on_step):
            counts.update(answer)
        done += len(batch)
        on_prompt(done, sum(counts.values()))
    return counts


def greedy_batch(session: Session, batch: list[list[int]], max_new_tokens: int,
                 on_step: OnStep | None = None) -> list[list[int]]:
    """The target's greedy answers to the prompts `batch`, each cut after its first EOS
    (core/greedy.py: plain greedy, whatever the model's generation_config asks for)."""
    from specscope.core.greedy import generate_answers

    eos = session.decoder.eos_ids
    pad = session.tokenizer.pad_token_id
    pad = pad if pad is not None else min(eos)
    return generate_answers(session.target.model, batch, max_new_tokens, eos, pad, on_step=on_step)


def count_generated_one_by_one(session: Session, prompts: list[Prompt], max_new_tokens: int,
                               on_prompt: OnPrompt) -> Counter:
    """Greedy answers through specscope's own loop, one prompt at a time (drafted by the draft
    model when there is one: the same tokens, faster than plain decoding, slower than a batch)."""
    counts: Counter = Counter()
    method = "draft" if "draft" in session.decoder.methods else "ar"
    for i, prompt in enumerate(prompts, 1):
        controls = session.controls(method=method, temperature=0.0, max_new_tokens=max_new_tokens)
        for event in session.decoder.run(session.encode(prompt.text), controls):
            if isinstance(event, Finished):
                counts.update(event.summary.token_ids)
        on_prompt(i, sum(counts.values()))
    return counts


def count_corpus(tokenizer, prompts: list[Prompt], on_prompt: OnPrompt) -> Counter:
    counts: Counter = Counter()
    for i, prompt in enumerate(prompts, 1):
        counts.update(tokenizer(prompt.text, add_special_tokens=False)["input_ids"])
        on_prompt(i, sum(counts.values()))
    return counts
