"""Prompt files for bench, trim and layerskip-search.

`--prompts` takes a file or the name of a packaged set (`long`, see PROMPT_SETS).

Spec-Bench form: JSONL with `category` and `turns` (the first turn is used); any other file is
plain text, one prompt a line (category `text`). Spec-Bench reports its eight MT-bench categories
as one group, `mt_bench`; `--categories` accepts that name too, and reports group categories the
same way (runs keep the file's own category).

Splits: a line may say which `split` its prompt belongs to (SPLITS; the packaged set says so on
every line, data/README.md gives the rule). Calibration prompts are what `trim`, `mtp train` and
`layerskip-search` fit on, tuning prompts what `mtp train` selects and estimates on, report prompts
what `bench` measures; a file without the field has no split and every command may draw on all of
it (`bench` then relies on the overlap check: bench/overlap.py). A prompt is identified across files
by `digest` (its text's checksum), which artifacts record beside its id.
"""
from __future__ import annotations

import hashlib
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
    # prompts in six languages, five scripts (data/README.md): the language-aware rows' test set
    "multilingual": DEFAULT_PROMPTS.parent / "multilingual.jsonl",
}
SPLITS = ("calibration", "tuning", "report")
# The packaged set's rule: a prompt's position within its category (0-based, file order), by fives.
SPLIT_CYCLE = ("report", "report", "tuning", "calibration", "calibration")
PROMPT_SETS_HELP = ("'long': the packaged long-context set, tasks on Python stdlib sources of "
                    "about 1k, 2k, 4k and 8k tokens (categories long-1k, long-2k, long-4k, "
                    "long-8k; 3 prompts each); 'multilingual': 30 prompts in Chinese, Japanese, "
                    "Korean, Russian, Arabic and Spanish (3 report, 2 tuning each).")


@dataclass(frozen=True)
class Prompt:
    id: str
    category: str  # as in the file
    text: str  # the first turn
    split: str | None = None  # SPLITS, or None: the file does not say

    @property
    def group(self) -> str:
        return group_of(self.category)

    @property
    def digest(self) -> str:
        """The prompt's identity across files: the first 16 hex digits of its text's sha256."""
        return text_digest(self.text)


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def split_by_position(position: int) -> str:
    """The split of the prompt at `position` (0-based) within its category: 0, 1 report; 2 tuning;
    3, 4 calibration; then again from 5 (so a category of 5 has 2 / 1 / 2, one of 40 has
    16 / 8 / 16)."""
    return SPLIT_CYCLE[position % len(SPLIT_CYCLE)]


def has_splits(prompts: list[Prompt]) -> bool:
    return any(p.split is not None for p in prompts)


def used_record(prompts: list[Prompt], source: str | Path | None = None,
                split: str | None = None) -> dict:
    """What an artifact records of the prompts it was fitted or selected on: their file, split,
    ids and digests (bench refuses to measure them: bench/overlap.py)."""
    return {"file": str(source) if source is not None else None, "split": split,
            "ids": [p.id for p in prompts], "digests": [p.digest for p in prompts]}


def merge_records(*records: dict | None) -> dict:
    """One record of every prompt in `records` (ids and digests, each once, in order)."""
    ids: list[str] = []
    digests: list[str] = []
    seen = set()
    for r in records:
        for i, d in zip((r or {}).get("ids", []), (r or {}).get("digests", [])):
            if d not in seen:
                seen.add(d)
                ids.append(i)
                digests.append(d)
    return {"ids": ids, "digests": digests}


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
        split = row.get("split")
        if split is not None and split not in SPLITS:
            raise SpecScopeError(f"{path}:{n}: 'split' must be {', '.join(SPLITS)}, got {split!r}")
        prompts.append(Prompt(str(row.get("question_id", n)), str(row["category"]), turns[0], split))
    if not prompts:
        raise SpecScopeError(f"no prompts in {path}")
    if has_splits(prompts) and not all(p.split for p in prompts):
        raise SpecScopeError(f"{path}: some lines have a 'split' and some do not (all or none)")
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
                   keep_apart: int = 0, split: str | None = None) -> list[Prompt]:
    """Keep the wanted categories (file order), at most `limit` prompts per file category, taken
    from the start of each category (or from its end). `split`: only that split's prompts, where
    the file has splits (a file without them gives all). `keep_apart`: never take the first this
    many of a category (for files without splits: a category shorter than limit + keep_apart
    would otherwise reach what `bench --limit` measures)."""
    if limit is not None and limit < 1:
        raise SpecScopeError(f"--limit must be >= 1, got {limit}")
    if split is not None and split not in SPLITS:
        raise SpecScopeError(f"--split must be {', '.join(SPLITS)} or all, got '{split}'")
    if split is not None and has_splits(prompts):
        prompts = [p for p in prompts if p.split == split]
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
                 limit: int | None = None, from_end: bool = False, keep_apart: int = 0,
                 split: str | None = None) -> list[Prompt]:
    """`path`: a file, the name of a packaged set (PROMPT_SETS; a str), or None: the default.
    `split`: that split only, where the file has splits."""
    path = prompt_source(path)
    return select_prompts(read_prompts(path), parse_categories(categories), limit, path, from_end,
                          keep_apart, split)
