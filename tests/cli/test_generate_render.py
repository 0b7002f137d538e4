"""What `specscope generate` prints: refused drafts stay on one line (newlines as ⏎), drafts past
the end of the answer are not shown as accepted, and without colour the asides are bracketed
so the answer can be read (and recovered) from the plain text."""
import re

from rich.console import Console
from typer.testing import CliRunner

from specscope.cli import app
from specscope.core.events import Drafted, Verified
from specscope.frontends.generate import STYLES, printable, render_step, uncoloured
from tests.clitools import json_lines

ASIDE = re.compile(r"\[-.*?-\]|\[=.*?=\]")


def step(texts, accepted, n_accepted, first_rejected, pieces):
    drafted = Drafted(step=0, context_len=10, method="draft", draft_len=len(texts),
                      tokens=tuple(range(100, 100 + len(texts))), texts=tuple(texts),
                      q=(0.5,) * len(texts), parents=tuple(range(-1, len(texts) - 1)), draft_s=0.0)
    verified = Verified(step=0, p=(0.5,) * len(texts), accepted=tuple(accepted),
                        n_accepted=n_accepted, first_rejected=first_rejected, token=7,
                        token_text=pieces[-1], bonus=first_rejected is None,
                        emitted=tuple(range(len(pieces))), pieces=tuple(pieces),
                        verify_s=0.0, draft_s=0.0)
    return drafted, verified


def spans(text) -> list[tuple[str, str]]:
    """(style, text) per span, in order: what the terminal would colour."""
    return [(str(s.style), text.plain[s.start:s.end]) for s in text.spans]


# The case from the issue: the drafter guessed " in Python:\n\n```python", the target took " in"
# and then ":" instead.
REFUSED_NEWLINES = step([" in", " Python:", "\n\n", "```python"], [True, False, False, False],
                        1, 1, [" in", ":"])


def test_a_refused_draft_with_newlines_stays_on_one_line():
    text = render_step(*REFUSED_NEWLINES, hide_rejected=False)
    assert text.plain == " in Python:⏎⏎```python:"
    assert spans(text) == [(STYLES["accepted"], " in"), (STYLES["rejected"], " Python:⏎⏎```python"),
                           (STYLES["target"], ":")]


def test_the_answers_own_newlines_are_kept():
    drafted, verified = step(["):", "\n", "    return"], [True, True, False], 2, 2,
                             ["):", "\n", "  "])
    text = render_step(drafted, verified, hide_rejected=False)
    assert text.plain == "):\n    return  "
    assert spans(text)[:2] == [(STYLES["accepted"], "):"), (STYLES["accepted"], "\n")]


def test_without_colour_the_refused_draft_is_bracketed():
    text = render_step(*REFUSED_NEWLINES, hide_rejected=False, plain=True)
    assert text.plain == " in[- Python:⏎⏎```python-]:"
    assert ASIDE.sub("", text.plain) == " in:"  # the answer, as emitted
    assert render_step(*REFUSED_NEWLINES, hide_rejected=True, plain=True).plain == " in:"


def test_drafts_past_the_end_of_the_answer_are_not_shown_accepted():
    # The target accepted "ok", "<|im_end|>" and "Human" and refused ":"; the answer ends at
    # <|im_end|>, so "Human" is never emitted and there is no correction.
    drafted, verified = step(["ok", "<|im_end|>", "Human", ":"], [True, True, True, False],
                             2, 3, ["ok", ""])
    text = render_step(drafted, verified, hide_rejected=False)
    assert spans(text) == [(STYLES["accepted"], "ok"), (STYLES["dropped"], "Human"),
                           (STYLES["rejected"], ":")]
    assert render_step(drafted, verified, False, plain=True).plain == "ok[=Human=][-:-]"


def test_no_colour_is_detected_from_the_console(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert uncoloured(Console(force_terminal=True))
    monkeypatch.delenv("NO_COLOR")
    assert not uncoloured(Console(force_terminal=True))
    assert uncoloured(Console(file=open("/dev/null", "w")))  # not a terminal


def test_piped_output_is_the_answer_plus_bracketed_drafts():
    runner = CliRunner()
    args = ["generate", "def quicksort(arr):", "-p", "tiny-random", "-n", "40", "-k", "4"]
    plain = runner.invoke(app, args)
    assert plain.exit_code == 0, plain.output
    answer = printable(json_lines(runner.invoke(app, [*args, "--json"]).stdout)[-1]["text"])
    shown = plain.stdout.rstrip("\n")
    assert "[-" in shown  # the tiny drafter gets some tokens refused
    assert ASIDE.sub("", shown) == answer
    assert shown.count("\n") == answer.count("\n")
    assert "[-rejected draft-]" in plain.stderr  # the legend says how to read it
