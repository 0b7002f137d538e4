"""What a regular install needs lies inside the package: default prompts, built-in profiles.

(.ci/wheel-check builds the wheel and runs it from outside the checkout; these are the cheap
checks that the code looks there and nowhere else.)
"""
import re
from pathlib import Path

import specscope
from specscope.profiles import BUILTIN_DIR, list_profiles, load_profile
from specscope.prompts import DEFAULT_PROMPTS, MT_BENCH_GROUP, default_prompt_file, load_prompts

PACKAGE = Path(specscope.__file__).resolve().parent


def test_default_prompts_are_the_packaged_spec_bench_half(monkeypatch):
    monkeypatch.delenv("SPECSCOPE_BENCH_PROMPTS", raising=False)
    assert default_prompt_file() == DEFAULT_PROMPTS and PACKAGE in DEFAULT_PROMPTS.parents
    prompts = load_prompts()
    assert len(prompts) == 240
    groups = {p.group for p in prompts}
    assert groups == {MT_BENCH_GROUP, "translation", "summarization", "qa", "math_reasoning", "rag"}
    for name in ("NOTICE", "README.md"):  # provenance and licence travel with the data
        text = (PACKAGE / "data" / name).read_text()
        assert "hemingkx/Spec-Bench" in text and "Apache License" in text
    assert "Apache License" in (PACKAGE / "data" / "LICENSE-Spec-Bench.txt").read_text()


def test_the_environment_variable_still_overrides(monkeypatch, tmp_path):
    other = tmp_path / "mine.txt"
    other.write_text("one prompt\n")
    monkeypatch.setenv("SPECSCOPE_BENCH_PROMPTS", str(other))
    assert [p.text for p in load_prompts()] == ["one prompt"]


def test_builtin_profiles_live_in_the_package_and_are_package_data():
    assert PACKAGE in BUILTIN_DIR.parents
    names = {p.name for p in list_profiles()}
    assert {"qwen2.5-coder", "tiny-random", "qwen2.5-coder-hub"} <= names
    assert Path(load_profile("tiny-random").path).parent == BUILTIN_DIR
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text()
    data = re.search(r"\[tool\.setuptools\.package-data\]\s*specscope = \[(.*?)\]", pyproject).group(1)
    assert '"builtin_profiles/*.yaml"' in data and '"data/*"' in data


def test_nothing_in_the_package_reads_beside_the_checkout():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"""["']shared["']|\.\./shared|parents\[2\]""", text), path
