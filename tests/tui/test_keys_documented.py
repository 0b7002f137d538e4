"""Every key the app binds is in the help screen (built from the bindings) and in docs/tui.md."""
from pathlib import Path

from specscope.tui.keys import BINDINGS
from specscope.tui.screens.help import key_names, keys_table

DOC = (Path(__file__).resolve().parents[2] / "docs" / "tui.md").read_text().lower()
SPELLING = {"escape": "esc"}


def test_every_bound_key_is_documented():
    for binding in BINDINGS:
        for key in key_names(binding).split():
            assert f"`{SPELLING.get(key, key).lower()}`" in DOC, key


def test_the_help_table_has_a_row_per_binding():
    assert keys_table().row_count >= len(BINDINGS)
