"""What `mtp eval` keeps of its clean evaluations, beside the head (HEAD.eval.json), and what
`specscope profiles` reads back (session.head_facts): one entry per prompts and settings, the
latest, tied to the head's file by its size and modification time (a head written again voids
them). Apart from train/evaluate.py so that reading it imports no model code."""
from __future__ import annotations

from pathlib import Path


DEFAULT_EVAL = "spec-bench report 2/category 128 tokens"  # what `mtp eval` with no options measures


def eval_record(head: Path) -> Path:
    """Where a head's evaluations are kept: beside it, HEAD.eval.json."""
    return head.with_name(head.stem + ".eval.json")


def _head_stamp(head: Path) -> list[int]:
    st = head.stat()
    return [st.st_size, st.st_mtime_ns]


def record_eval(o, rep) -> str:
    """Keep rep's overall numbers beside the head (atomically; the entry of the same prompts and
    settings replaced), for a clean evaluation only. Returns the entry's name."""
    import datetime
    import json

    from specscope.train.caches import write_json

    name = (f"{o.prompts or 'spec-bench'} {o.split or 'all'} "
            f"{f'{o.limit}/category' if o.limit else 'all'}"
            f"{' ' + ','.join(o.categories) if o.categories else ''} {o.max_new_tokens} tokens"
            f"{f' script_rows {rep.script_rows}' if rep.script_rows else ''}"
            f"{'' if rep.dtype == rep.trained.get('dtype', rep.dtype) else ' ' + rep.dtype}")
    path = eval_record(rep.head)
    try:
        kept = json.loads(path.read_text())
        kept = kept if isinstance(kept, dict) and kept.get("head") == _head_stamp(rep.head) else {}
    except (OSError, ValueError):
        kept = {}
    entries = kept.get("entries", {})
    entries[name] = {"prompts": rep.overall.prompts, "answer_tokens": rep.overall.tokens,
                     "acceptance": [round(a, 4) for a in rep.overall.acceptance],
                     "date": datetime.date.today().isoformat()}
    write_json(path, {"head": _head_stamp(rep.head), "entries": entries})
    return name


def read_evals(head: Path) -> dict:
    """The head's recorded evaluations (entry name -> numbers); {} when there are none or the
    head was written again since."""
    import json

    try:
        kept = json.loads(eval_record(head).read_text())
        return kept.get("entries", {}) if kept.get("head") == _head_stamp(head) else {}
    except (OSError, ValueError, AttributeError):
        return {}
