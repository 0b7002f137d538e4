"""A lesson run over a prompt read in chunks: its progress says so, and it can be cancelled then."""
import pytest

from specscope.core.events import Prefilling
from specscope.lesson.runs import Cancelled, Lesson, run

PROMPT = "Explain what a KV cache holds, and why speculative decoding can reuse it."


@pytest.fixture
def chunked(tiny_session):
    lms = [tiny_session.decoder.target, tiny_session.drafter_lm]
    for lm in lms:
        lm.prefill_chunk = 8
    tiny_session.decoder.reset()
    yield tiny_session
    for lm in lms:
        del lm.prefill_chunk  # back to the class default
    tiny_session.decoder.reset()


def test_progress_names_the_prefill_and_the_run_still_reads(chunked):
    seen = []
    lesson = Lesson(chunked, max_new_tokens=6, progress=lambda label, n: seen.append((label, n)))
    r = run(lesson, "draft", PROMPT, method="draft", draft_len=3)
    n = len(chunked.encode(PROMPT)) - 1
    assert ("draft, reading the prompt", 0) in seen and ("draft, reading the prompt", n) in seen
    assert ("draft, drafter reading it", n) in seen
    assert any(isinstance(e, Prefilling) for e in r.events)
    assert r.summary.new_tokens == 6 and len(r.steps()) == r.summary.steps


def test_cancelling_during_the_prefill(chunked):
    seen = []
    lesson = Lesson(chunked, max_new_tokens=6, cancelled=lambda: bool(seen),
                    progress=lambda label, n: seen.append(label))
    with pytest.raises(Cancelled):
        run(lesson, "plain", PROMPT, method="ar")
    assert seen == ["plain, reading the prompt"]  # stopped after the first chunk's report
