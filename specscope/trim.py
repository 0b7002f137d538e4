"""VocabTrim calibration: count the tokens the target produces (or a corpus contains)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from specscope.core.events import Finished
from specscope.prompts import Prompt
from specscope.session import Session

OnPrompt = Callable[[int, int], None]  # (prompts done, tokens counted so far)


def count_generated(session: Session, prompts: list[Prompt], max_new_tokens: int,
                    on_prompt: OnPrompt) -> Counter:
    """Greedy answers of the target, drafted by the draft model when there is one (same tokens,
    faster); each answer's tokens are counted."""
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
