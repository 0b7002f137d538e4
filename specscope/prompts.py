"""Prompt files: Spec-Bench JSONL (`category`, `turns`) or plain text, one prompt a line."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from specscope.core.errors import SpecScopeError

# Spec-Bench groups its eight MT-bench categories under one name.
MT_BENCH = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
SHARED_PROMPTS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "spec_bench_dev.jsonl"


@dataclass(frozen=True)
class Prompt:
    id: str
    category: str
    text: str


def default_prompt_file() -> Path:
    if SHARED_PROMPTS.is_file():
        return SHARED_PROMPTS
    raise SpecScopeError("no default prompt file here: pass --prompts FILE "
                         "(Spec-Bench JSONL, or text with one prompt a line)")


def load_prompts(path: str | Path | None) -> list[Prompt]:
    path = Path(path).expanduser() if path else default_prompt_file()
    if not path.is_file():
        raise SpecScopeError(f"prompt file not found: {path}")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    prompts: list[Prompt] = []
    if path.suffix in (".jsonl", ".json"):
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                turns = row["turns"]
                text = turns[0] if isinstance(turns, list) else str(turns)
            except (json.JSONDecodeError, KeyError, IndexError, TypeError):
                raise SpecScopeError(f"{path}:{n}: expected a JSON object with 'turns'") from None
            prompts.append(Prompt(str(row.get("question_id", n)), str(row.get("category", "all")), text))
    else:
        prompts = [Prompt(str(n), "all", line) for n, line in enumerate(lines, 1) if line.strip()]
    if not prompts:
        raise SpecScopeError(f"{path}: no prompts in the file")
    return prompts


def per_category(prompts: list[Prompt], limit: int | None, from_end: bool = False) -> list[Prompt]:
    """At most `limit` prompts per category, from the start (or the end) of each category."""
    if limit is None:
        return prompts
    groups: dict[str, list[Prompt]] = {}
    for p in prompts:
        groups.setdefault(p.category, []).append(p)
    chosen = set()
    for group in groups.values():
        chosen.update(id(p) for p in (group[-limit:] if from_end else group[:limit]))
    return [p for p in prompts if id(p) in chosen]
