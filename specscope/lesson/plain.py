"""`specscope lesson --plain`: the same chapters as text, for a projector or a notebook."""
from __future__ import annotations

from rich.console import Console
from rich.text import Text

from specscope.lesson.chapters import CHAPTERS, run_chapter
from specscope.lesson.runs import Lesson, Page


def page_text(page: Page) -> list[Text]:
    """A chapter as printable lines: title, what the run showed, then the caption."""
    lines = [Text(f"{page.number}. {page.title}", "bold underline"), *page.body, Text()]
    lines += [Text(line) for line in page.caption]
    return lines


def print_lesson(lesson: Lesson, console: Console, chapters: list[int] | None = None) -> list[Page]:
    pages = []
    for number in chapters or range(1, len(CHAPTERS) + 1):
        with console.status(f"chapter {number}: running on the models…"):
            page = run_chapter(lesson, number)
        pages.append(page)
        for line in page_text(page):
            console.print(line)
        console.print()
    return pages
