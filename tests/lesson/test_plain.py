"""`specscope lesson --plain`: the same chapters as text, and one-line errors for bad options."""
from rich.console import Console
from typer.testing import CliRunner

from specscope.cli import app as cli
from specscope.lesson.plain import print_lesson
from specscope.lesson.runs import Lesson

from lesson_checks import check


def squash(s):
    return " ".join(s.split())


def test_the_transcript_prints_every_chapter_with_its_runs_caption(tiny_session):
    console = Console(record=True, width=80, force_terminal=False)
    pages = print_lesson(Lesson(tiny_session, max_new_tokens=16), console)
    text = console.export_text()
    assert [p.number for p in pages] == [1, 2, 3, 4, 5, 6]
    for page in pages:
        check(page, tiny_session)
        assert f"{page.number}. {page.title}" in text
        assert squash(" ".join(page.caption)) in squash(text)
    assert "\x1b[" not in text


def test_the_command_prints_the_chosen_chapters():
    r = CliRunner().invoke(cli, ["lesson", "-p", "tiny-random", "--plain", "-c", "2", "-n", "12"])
    assert r.exit_code == 0, r.output
    assert "2. A drafter proposes, the target checks all at once" in r.output
    assert "1. Plain decoding" not in r.output and "the target scored all of them" in r.output


def test_bad_options_get_one_line_and_exit_2():
    for args, message in ((["-c", "7"], "--chapter must be between 1 and 6"),
                          (["-n", "0"], "--max-new-tokens must be between"),
                          (["--trimmed", "/nope.safetensors"], "trimmed head not found"),
                          (["-p", "no-such-profile"], "profile")):
        r = CliRunner().invoke(cli, ["lesson", "-p", "tiny-random", "--plain", *args])
        assert r.exit_code == 2, (args, r.output)
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.output
