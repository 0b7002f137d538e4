"""The lesson's chapters, in order: plain functions from a `Lesson` to a `Page`."""
from __future__ import annotations

from collections.abc import Callable

from rich.text import Text

from specscope.lesson.basics import draft_and_verify, plain_decoding, same_output
from specscope.lesson.cost import cheaper_drafting, draft_length
from specscope.lesson.others import other_drafters
from specscope.lesson.runs import Lesson, Page

CHAPTERS: list[tuple[str, Callable[[Lesson], Page]]] = [
    ("Plain decoding: one target pass per token", plain_decoding),
    ("A drafter proposes, the target checks all at once", draft_and_verify),
    ("Why the output does not change", same_output),
    ("Why a longer draft can be slower", draft_length),
    ("Cheaper drafting: VocabTrim", cheaper_drafting),
    ("Other drafters where they shine", other_drafters),
]
NEEDS_DRAFTER = {2, 3, 4, 5}


def run_chapter(lesson: Lesson, number: int) -> Page:
    """Run chapter `number` (1-based) live on the lesson's session."""
    title, chapter = CHAPTERS[number - 1]
    if number in NEEDS_DRAFTER and not lesson.has_drafter:
        return Page(number, title, body=[Text("(skipped)", "dim")],
                    caption=[f"Profile '{lesson.session.profile.name}' has no draft model; this "
                             f"chapter needs one (try the default profile or tiny-random)."])
    return chapter(lesson)
