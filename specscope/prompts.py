"""Prompt files for bench, trim and layerskip-search.

`--prompts` takes a file or the name of a packaged set (`long`, see PROMPT_SETS).

Spec-Bench form: JSONL with `category` and `turns` (the first turn is used); any other file is
plain text, one prompt a line (category `text`). Spec-Bench reports its eight MT-bench categories
as one group, `mt_bench`; `--categories` accepts that name too, and reports group categories the
same way (runs keep the file's own category).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from specscope.core.errors import SpecScopeError

MT_BENCH = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
MT_BENCH_GROUP = "mt_bench"
# The development half of Spec-Bench, shipped inside the package (see data/README.md for its
# provenance and licence); SPECSCOPE_BENCH_PROMPTS overrides.
DEFAULT_PROMPTS = Path(__file__).resolve().parent / "data" / "spec_bench_dev.jsonl"
DEFAULT_PROMPTS_HELP = ("Default: the packaged Spec-Bench dev half (240 prompts, 13 categories), "
                        "or the file named by $SPECSCOPE_BENCH_PROMPTS.")
# Packaged prompt sets chosen by name instead of a path (a file called so: ./long).
PROMPT_SETS = {
    # long-context tasks cut from Python's stdlib sources (data/README.md; prompts_long.py)
    "long": DEFAULT_PROMPTS.parent / "long_context.jsonl",
}
PROMPT_SETS_HELP = ("'long': the packaged long-context set, tasks on Python stdlib sources of "
                    "about 1k, 2k, 4k and 8k tokens (categories long-1k, long-2k, long-4k, "
                    "long-8k; 3 prompts each).")


@dataclass(frozen=True)
class Prompt:
    id: str
    category: str  # as in the file
    text: str  # the first turn

    @property
    def group(self) -> str:
        return group_of(self.category)


def group_of(category: str) -> str:
    return MT_BENCH_GROUP if category in MT_BENCH else category


def default_prompt_file() -> Path:
    env = os.environ.get("SPECSCOPE_BENCH_PROMPTS")
    path = Path(env) if env else DEFAULT_PROMPTS
    if not path.is_file():
        where = "$SPECSCOPE_BENCH_PROMPTS" if env else "the packaged default"
        raise SpecScopeError(f"no prompt file: {path} ({where}) does not exist; pass --prompts FILE "
                             "(Spec-Bench JSONL: one object a line with 'category' and 'turns')")
    return path


def prompt_source(value: str | Path | None) -> Path:
    """The file behind --prompts: a packaged set's name, a path, or None for the default."""
    if value is None:
        return default_prompt_file()
    if isinstance(value, str) and value in PROMPT_SETS:
        return PROMPT_SETS[value]
    return Path(value).expanduser()


def read_prompts(path: Path) -> list[Prompt]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SpecScopeError(f"prompt file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecScopeError(f"cannot read prompt file {path}: {getattr(e, 'strerror', None) or e}") from None
    if Path(path).suffix not in (".jsonl", ".json"):
        prompts = [Prompt(str(n), "text", line) for n, line in enumerate(lines, 1) if line.strip()]
        if not prompts:
            raise SpecScopeError(f"no prompts in {path}")
        return prompts
    prompts = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SpecScopeError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or "category" not in row or "turns" not in row:
            raise SpecScopeError(f"{path}:{n}: each line needs 'category' and 'turns' (Spec-Bench form)")
        turns = row["turns"]
        if isinstance(turns, str):
            turns = [turns]
        if not turns or not isinstance(turns[0], str) or not turns[0].strip():
            raise SpecScopeError(f"{path}:{n}: 'turns' must hold a non-empty first turn")
        prompts.append(Prompt(str(row.get("question_id", n)), str(row["category"]), turns[0]))
    if not prompts:
        raise SpecScopeError(f"no prompts in {path}")
    return prompts


def parse_categories(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [c.strip() for c in value.split(",") if c.strip()]
    if not names:
        raise SpecScopeError("--categories is empty")
    return names


def select_prompts(prompts: list[Prompt], categories: list[str] | None, limit: int | None,
                   source: Path | str = "the prompt file", from_end: bool = False,
                   keep_apart: int = 0) -> list[Prompt]:
    """Keep the wanted categories (file order), at most `limit` prompts per file category, taken
    from the start of each category (or from its end: trim and mtp train calibrate there, bench
    measures at the start, so the two stay apart). `keep_apart`: never take the first this many
    of a category (a category shorter than limit + keep_apart would otherwise reach them)."""
    if limit is not None and limit < 1:
        raise SpecScopeError(f"--limit must be >= 1, got {limit}")
    if keep_apart:
        seen: dict[str, int] = {}
        kept = []
        for p in prompts:
            seen[p.category] = seen.get(p.category, 0) + 1
            if seen[p.category] > keep_apart:
                kept.append(p)
        prompts = kept
    present = list(dict.fromkeys(p.category for p in prompts))
    wanted = set(present)
    if categories is not None:
        wanted = set()
        for name in categories:
            if name == MT_BENCH_GROUP and any(c in MT_BENCH for c in present):
                wanted.update(c for c in present if c in MT_BENCH)
            elif name in present:
                wanted.add(name)
            else:
                known = present + ([MT_BENCH_GROUP] if any(c in MT_BENCH for c in present) else [])
                raise SpecScopeError(f"unknown category '{name}' ({source} has: {', '.join(known)})")
    taken: dict[str, int] = {}
    out = []
    for p in (reversed(prompts) if from_end else prompts):
        if p.category not in wanted or (limit is not None and taken.get(p.category, 0) >= limit):
            continue
        taken[p.category] = taken.get(p.category, 0) + 1
        out.append(p)
    return out[::-1] if from_end else out


def load_prompts(path: str | Path | None = None, categories: str | None = None,
                 limit: int | None = None, from_end: bool = False, keep_apart: int = 0) -> list[Prompt]:
    """`path`: a file, the name of a packaged set (PROMPT_SETS; a str), or None: the default."""
    path = prompt_source(path)
    return select_prompts(read_prompts(path), parse_categories(categories), limit, path, from_end,
                          keep_apart)
