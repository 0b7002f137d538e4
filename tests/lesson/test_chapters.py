"""Each chapter run on the tiny models: its caption's numbers are the run's own numbers."""
import pytest

from specscope.lesson.chapters import CHAPTERS, run_chapter
from specscope.lesson.runs import Lesson

from lesson_checks import check


@pytest.mark.parametrize("number", range(1, len(CHAPTERS) + 1))
def test_a_chapters_caption_states_its_runs_numbers(tiny_session, number):
    page = run_chapter(Lesson(tiny_session, max_new_tokens=32), number)
    assert page.number == number and page.title == CHAPTERS[number - 1][0]
    assert page.runs and page.body and page.caption
    check(page, tiny_session)


def test_cheaper_drafting_compares_the_full_and_the_trimmed_head(tiny_trimmed):
    from specscope.profiles import load_profile
    from specscope.session import load_session

    session = load_session(load_profile("tiny-random"), trimmed=str(tiny_trimmed))
    page = run_chapter(Lesson(session, max_new_tokens=32), 5)
    assert set(page.runs) == {"full", "trimmed"}
    check(page, session)
