"""The `long` prompt set: long-context tasks cut from the sources of Python's standard library.

Every machine with Python has these texts, so the set needs no download; the file that ships
(data/long_context.jsonl) was built once from one Python release, so results compare across
machines and Python versions. Three tasks per length, each on its own module, the excerpt being
the start of the file cut at a statement boundary (a top-level statement or a method) so that
the whole prompt fits the length:

  summarise  summarise the module from its excerpt              (LongSpec's summarisation)
  continue   continue the file from where the excerpt stops      (LongSpec's code completion)
  callers    which functions in the excerpt call a function      (a question over the context)

Lengths are counted with the embedded Qwen2.5-Coder tokenizer, on the prompt text without the
chat template (which adds a few dozen tokens), and recorded per prompt (`tokens`).

    python -m specscope.prompts_long                # rebuild data/long_context.jsonl
    python -m specscope.prompts_long --out FILE --tokenizer tokenizer.json --stdlib DIR

Same stdlib files and tokenizer, same bytes.
"""
from __future__ import annotations

import ast
import json
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

from specscope.core.errors import SpecScopeError

SHIPPED = Path(__file__).resolve().parent / "data" / "long_context.jsonl"
LENGTHS = {"long-1k": 1024, "long-2k": 2048, "long-4k": 4096, "long-8k": 8192}
LOW = 0.8  # every prompt has between LOW * length and length tokens
# (category, task, module): a different module for every prompt; `bench --limit 2` keeps the
# first two tasks of each length (summarise, continue)
PLAN = [
    ("long-1k", "summarise", "graphlib.py"), ("long-1k", "continue", "queue.py"),
    ("long-1k", "callers", "traceback.py"),
    ("long-2k", "summarise", "string.py"), ("long-2k", "continue", "textwrap.py"),
    ("long-2k", "callers", "copy.py"),
    ("long-4k", "summarise", "heapq.py"), ("long-4k", "continue", "calendar.py"),
    ("long-4k", "callers", "pprint.py"),
    ("long-8k", "summarise", "statistics.py"), ("long-8k", "continue", "dataclasses.py"),
    ("long-8k", "callers", "configparser.py"),
]


def default_tokenizer() -> Path:
    from specscope.core.embedded import cache_dir

    return cache_dir() / "models" / "qwen2.5-coder-1.5b-instruct-bfloat16" / "tokenizer.json"


def boundaries(tree: ast.Module) -> list[int]:
    """Line numbers (1-based) where an excerpt may stop: before a top-level statement, or before
    a statement of a class body after its first (so what precedes always parses)."""
    def start(node) -> int:
        return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])

    lines = []
    for node in tree.body:
        lines.append(start(node))
        if isinstance(node, ast.ClassDef):
            lines += [start(child) for child in node.body[1:]]
    return sorted(set(lines))


def called_name(func: ast.expr) -> str | None:
    """`f(...)`, `self.f(...)`, `cls.f(...)`: f; other calls (`items.append(...)`) are not
    calls of a function defined here, as far as a reader of the excerpt can tell."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
            and func.value.id in ("self", "cls"):
        return func.attr
    return None


def call_index(tree: ast.Module) -> list[tuple[str, int, int, set[str]]]:
    """Every function and method: (name, first line, last line, names it calls)."""
    return [(fn.name, fn.lineno, fn.end_lineno,
             {name for node in ast.walk(fn) if isinstance(node, ast.Call)
              and (name := called_name(node.func)) is not None})
            for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))]


def most_called(index: list[tuple[str, int, int, set[str]]], end: int) -> str | None:
    """The function or method defined before line `end` that the most other functions defined
    there call (at least two): the subject of a `callers` question."""
    shown = [(name, first, called) for name, first, last, called in index if last < end]
    defined: dict[str, int] = {}
    for name, first, _ in shown:
        if not (name.startswith("__") and name.endswith("__")):
            defined.setdefault(name, first)
    callers = {name: {(caller, first) for caller, first, called in shown
                      if name in called and caller != name} for name in defined}
    ranked = sorted(callers, key=lambda n: (-len(callers[n]), defined[n], n))
    return ranked[0] if ranked and len(callers[ranked[0]]) >= 2 else None


def task_text(task: str, source: str, python: str, code: str, subject: str | None) -> str:
    head = f"Below is the beginning of `Lib/{source}` from CPython {python}"
    block = f"```python\n{code}```"
    if task == "summarise":
        return (f"{head}.\n\n{block}\n\nSummarise this module: what it is for, its main classes "
                "and functions, and how they work together.")
    if task == "continue":
        return (f"{head}; it stops part way.\n\n{block}\n\nContinue the file from where it "
                "stops. Reply with Python code only.")
    return (f"{head}.\n\n{block}\n\nWhich functions and methods in this code call "
            f"`{subject}`? For each of them, say what it uses `{subject}` for.")


def make_prompt(text: str, source: str, task: str, length: int, python: str,
                count: Callable[[str], int]) -> tuple[str, int]:
    """The longest excerpt (cut at a boundary) whose prompt has at most `length` tokens."""
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    cuts = [b for b in boundaries(tree) if b > 1]
    index = call_index(tree) if task == "callers" else []

    def prompt(cut: int) -> str | None:
        subject = most_called(index, cut) if task == "callers" else None
        if task == "callers" and subject is None:
            return None
        code = "".join(lines[:cut - 1]).rstrip() + "\n"  # no trailing blank lines
        return task_text(task, source, python, code, subject)

    best, lo, hi = None, 0, len(cuts) - 1  # token counts grow with the cut: binary search
    while lo <= hi:
        mid = (lo + hi) // 2
        p = prompt(cuts[mid])
        n = count(p) if p is not None else 0
        if n <= length:
            if p is not None:
                best = (p, n)
            lo = mid + 1
        else:
            hi = mid - 1
    if best is None or best[1] < LOW * length:
        got = best[1] if best else 0
        raise SpecScopeError(f"Lib/{source}: no {task} prompt of {LOW:.0%}..100% of {length} "
                             f"tokens (best {got}); choose a longer module")
    return best


def build(stdlib: Path, count: Callable[[str], int], python: str, tokenizer: str) -> str:
    """The JSONL text of the set, one prompt a line (Spec-Bench form plus provenance)."""
    out = []
    for category, task, source in PLAN:
        path = Path(stdlib) / source
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise SpecScopeError(f"cannot read {path}: {e.strerror or e}") from None
        prompt, n = make_prompt(text, source, task, LENGTHS[category], python, count)
        row = {"question_id": f"{category}-{task}-{Path(source).stem}", "category": category,
               "turns": [prompt], "task": task, "source": f"Lib/{source}",
               "python": python, "tokens": n, "tokenizer": tokenizer}
        out.append(json.dumps(row, ensure_ascii=True) + "\n")
    return "".join(out)


def token_counter(path: Path) -> Callable[[str], int]:
    from tokenizers import Tokenizer

    if not Path(path).is_file():
        raise SpecScopeError(f"no tokenizer at {path}: run `specscope generate` once (it converts "
                             "the embedded pair), or pass --tokenizer tokenizer.json")
    tok = Tokenizer.from_file(str(path))
    return lambda text: len(tok.encode(text, add_special_tokens=False).ids)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from specscope.outputs import atomic_write_text

    parser = argparse.ArgumentParser(prog="python -m specscope.prompts_long",
                                     description="Build the `long` prompt set from the stdlib.")
    parser.add_argument("--out", type=Path, default=SHIPPED, help="default: the shipped file")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="tokenizer.json (default: the embedded Qwen2.5-Coder one)")
    parser.add_argument("--stdlib", type=Path, default=Path(sysconfig.get_paths()["stdlib"]),
                        help="the Lib/ folder to read (default: this Python's)")
    parser.add_argument("--python", default=".".join(map(str, sys.version_info[:3])),
                        help="the Python version --stdlib belongs to (default: this one)")
    args = parser.parse_args(argv)
    try:
        count = token_counter(args.tokenizer or default_tokenizer())
        text = build(args.stdlib, count, args.python, "Qwen2.5-Coder")
        atomic_write_text(args.out, text)
    except SpecScopeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({text.count(chr(10))} prompts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
