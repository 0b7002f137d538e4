"""The packaged `long` prompt set: its builder is deterministic, the shipped file is what it built."""
import json
import sys
import textwrap

import pytest

from specscope.core.errors import SpecScopeError
from specscope.prompts import PROMPT_SETS, load_prompts, read_prompts
from specscope.prompts_long import LENGTHS, LOW, PLAN, SHIPPED, build, default_tokenizer, main

CATEGORIES = ["long-1k", "long-2k", "long-4k", "long-8k"]


def rows():
    return [json.loads(line) for line in SHIPPED.read_text().splitlines()]


def test_the_shipped_file_parses_with_three_prompts_of_each_length():
    prompts = read_prompts(SHIPPED)
    assert [p.category for p in prompts] == [c for c in CATEGORIES for _ in range(3)]
    assert len({p.id for p in prompts}) == len(prompts)
    for row in rows():
        length = LENGTHS[row["category"]]
        assert LOW * length <= row["tokens"] <= length, row["question_id"]
        assert row["source"].startswith("Lib/") and row["source"] in row["turns"][0]
        assert row["python"] == "3.11.7" and row["task"] in ("summarise", "continue", "callers")
        assert "```python\n" in row["turns"][0]


def test_long_is_a_name_for_the_shipped_set_and_categories_pick_lengths():
    assert PROMPT_SETS["long"] == SHIPPED
    picked = load_prompts("long", "long-1k,long-8k")
    assert [p.category for p in picked] == ["long-1k"] * 3 + ["long-8k"] * 3
    assert [p.id for p in load_prompts("long", limit=2)][:2] == ["long-1k-summarise-graphlib",
                                                                 "long-1k-continue-queue"]
    with pytest.raises(SpecScopeError, match="long-1k, long-2k, long-4k, long-8k"):
        load_prompts("long", "long-16k")


def fake_stdlib(root, tweak=""):
    """A Lib/ folder with every planned module: many small functions that call each other."""
    for category, _, source in PLAN:
        funcs = [textwrap.dedent(f'''
            def helper_{i}(x):
                """Step {i} of {source}{tweak}."""
                return helper_{i - 1}(x) + helper_{i // 2}(x) if x else {i}
            ''') for i in range(1, LENGTHS[category] // 12)]  # ~20 words a function
        path = root / source
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('"""A module."""\n\n\ndef helper_0(x):\n    return x\n' + "".join(funcs))


def words(text):
    return len(text.split())


def test_the_builder_is_deterministic_and_follows_its_sources(tmp_path):
    fake_stdlib(tmp_path)
    first = build(tmp_path, words, "3.0.0", "words")
    assert build(tmp_path, words, "3.0.0", "words") == first  # same files, same bytes
    built = [json.loads(line) for line in first.splitlines()]
    assert [r["category"] for r in built] == [c for c in CATEGORIES for _ in range(3)]
    for r in built:
        assert LOW * LENGTHS[r["category"]] <= r["tokens"] == words(r["turns"][0])
        assert r["tokens"] <= LENGTHS[r["category"]]
    fake_stdlib(tmp_path, tweak=" (edited)")
    assert build(tmp_path, words, "3.0.0", "words") != first


def test_a_module_too_short_for_its_length_is_refused(tmp_path):
    fake_stdlib(tmp_path)
    (tmp_path / PLAN[-1][2]).write_text("def f():\n    return 1\n")
    with pytest.raises(SpecScopeError, match="choose a longer module"):
        build(tmp_path, words, "3.0.0", "words")


def test_the_command_says_what_is_missing(tmp_path, capsys):
    assert main(["--tokenizer", str(tmp_path / "none.json"), "--out", str(tmp_path / "o")]) == 2
    assert "no tokenizer" in capsys.readouterr().err and not (tmp_path / "o").exists()


@pytest.mark.skipif(sys.version_info[:3] != (3, 11, 7) or not default_tokenizer().is_file(),
                    reason="the shipped file was built from CPython 3.11.7 with the Qwen tokenizer")
def test_the_shipped_file_is_what_the_builder_makes(tmp_path):
    out = tmp_path / "long.jsonl"
    assert main(["--out", str(out)]) == 0
    assert out.read_bytes() == SHIPPED.read_bytes()
