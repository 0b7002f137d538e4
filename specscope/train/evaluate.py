"""`mtp eval`: a FastMTP head's greedy chain acceptance at draft steps 1..depth on prompts it was
neither trained nor selected on (by default the packaged set's report split), per category.

The same measure as `mtp train`'s held-out estimate (core/mtp_train.py: at every position of the
target's greedy answer, do the head's steps 1..j all draft the target's own tokens), on as many
prompts as asked, so heads trained in different budgets or recipes compare on one set. The rows
a head drafts over are those drafting uses: the first K of its ranking, the prompt's own tokens
(context rows; drafting adds the answer's too as it goes, so this is a lower bound) and, with
`script_rows`, the common tokens of the prompt's script (core/scripts.py).

The target's greedy answers and hidden states are cached (per target, dtype and answer length)
in the cache's mtp/ folder, shared by every head evaluated there: a second head costs seconds.
Prompts a head was trained or selected on are refused (or, allowed, flagged), as in bench.

Each clean evaluation (nothing flagged) is recorded beside the head (`eval_record`: HEAD.eval.json,
one entry per set of prompts and settings, the latest kept), tied to the head's file by its size
and modification time: `specscope profiles` shows the default one (the report split, 2 a
category) before the head's own 4-prompt estimate, which is too noisy to rank heads by.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch

from specscope.core.errors import SpecScopeError
from specscope.train.events import Beat, Ended, Note, OnEvent, Progress, Started, ignore


@dataclass
class EvalOptions:
    profile: object = None  # a Profile, or a name
    head: Path | None = None  # None: the profile's head
    prompts: str | Path | None = None  # a file, a packaged set's name (prompts.PROMPT_SETS), None
    split: str | None = "report"  # None: every prompt of the file
    categories: list[str] | None = None
    limit: int | None = 2  # prompts per category
    max_new_tokens: int = 128
    max_prompt_tokens: int = 768
    batch: int = 16
    depth: int = 3
    script_rows: int | None = None  # None: the profile's
    allow_overlap: bool = False
    dtype: str | None = None  # None: the head's training dtype


@dataclass
class Row:
    """One category's (or all prompts') numbers."""

    prompts: int = 0
    tokens: int = 0  # answer tokens
    in_rows: int = 0  # of those, inside the rows drafted over
    hits: list[int] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)
    scripts: dict = field(default_factory=dict)  # the prompts' scripts (None: Latin/none) -> count

    @property
    def acceptance(self) -> list[float]:
        return [h / s if s else 0.0 for h, s in zip(self.hits, self.seen)]

    @property
    def cover(self) -> float:
        return self.in_rows / self.tokens if self.tokens else 0.0

    def add(self, hits, seen, tokens: int, in_rows: int, script) -> None:
        self.hits = [a + b for a, b in zip(self.hits, hits)] if self.hits else list(hits)
        self.seen = [a + b for a, b in zip(self.seen, seen)] if self.seen else list(seen)
        self.prompts += 1
        self.tokens += tokens
        self.in_rows += in_rows
        self.scripts[script] = self.scripts.get(script, 0) + 1


@dataclass
class EvalReport:
    head: Path
    target: str
    dtype: str
    k: int
    script_rows: int
    overall: Row
    by_category: dict  # category -> Row, in the prompts' order
    flagged: list[str]  # prompt ids the head was trained or selected on (--allow-overlap)
    unchecked: bool  # the head records no prompts: overlap could not be checked
    trained: dict  # the head's training record (budget, seconds, its own estimate)
    skipped: int  # prompts longer than max_prompt_tokens
    answers_resumed: int


def evaluate_head(o: EvalOptions, on_event: OnEvent = ignore, loading=None) -> EvalReport:
    from specscope.bench.overlap import find_overlap, refusal
    from specscope.core.context_rows import ContextRows
    from specscope.core.drafters.model import RankedHead
    from specscope.core.lm import CachedLM
    from specscope.core.models import eos_ids, load_causal_lm, load_tokenizer
    from specscope.core.mtp import artifact_path, load_artifact, read_meta
    from specscope.core.mtp_train import Sample, sequence_loss
    from specscope.core.scripts import ScriptRows, script_table
    from specscope.core.vocab import model_fingerprint
    from specscope.profiles import Profile, load_profile
    from specscope.prompts import load_prompts
    from specscope.session import encode_prompt
    from specscope.train.caches import hidden_cached, self_distil_cached
    from specscope.train.corpus import answers_file, hidden_key
    from specscope.train.budget import train_command

    loading = loading or (lambda: nullcontext(None))
    prof = o.profile if isinstance(o.profile, Profile) else load_profile(o.profile)
    path = Path(o.head).expanduser() if o.head else artifact_path(prof.name)
    if not path.is_file():
        if o.head:
            raise SpecScopeError(f"no FastMTP head at {path}")
        raise SpecScopeError(f"no trained FastMTP head for profile '{prof.name}': {train_command(prof)}")
    meta, _ = read_meta(path)
    trained = meta.get("training", {})
    dtype = o.dtype or trained.get("dtype") or prof.dtype
    prompts = load_prompts(o.prompts, ",".join(o.categories) if o.categories else None, o.limit,
                           split=o.split)
    if not prompts:
        raise SpecScopeError("no prompts to evaluate on")
    overlap = find_overlap(prompts, [("FastMTP head", path)])
    if overlap.flagged and not o.allow_overlap:
        raise refusal(overlap, [("FastMTP head", path)])
    if overlap.unchecked:
        on_event(Note(f"{path} records no prompts it was trained on: overlap not checked", warning=True))
    m = prof.script_rows if o.script_rows is None else o.script_rows

    with loading() as progress:
        tokenizer = load_tokenizer(prof.target, progress, dtype)
        model = load_causal_lm(prof.target, dtype, prof.device, progress)
    target = CachedLM(model)
    art = load_artifact(path, target, prof.target, tokenizer)
    eos = eos_ids(tokenizer, model, prof.eos_tokens)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos or {0})
    encoded, skipped = [], 0
    for p in prompts:
        ids = encode_prompt(tokenizer, p.text, prof.chat_template, prof.system_prompt)
        if len(ids) > o.max_prompt_tokens:
            skipped += 1
        else:
            encoded.append((p, ids))
    if not encoded:
        raise SpecScopeError(f"every prompt is longer than {o.max_prompt_tokens} tokens")

    # answers and hidden states in the cache's mtp/ folder, shared by every head evaluated there
    fp = model_fingerprint(target, prof.target)
    home = artifact_path(prof.name)
    data = answers_file(home, f"{prof.name}-eval", [fp["head_sha256"], dtype, o.max_new_tokens])
    answers, resumed = self_distil_cached(model, [ids for _, ids in encoded], o.max_new_tokens, eos,
                                          pad, o.batch, data, on_event)
    samples = [Sample(ids + ans, len(ids), prompt_len=len(ids)) for (_, ids), ans in zip(encoded, answers)]
    hidden_dir = home.parent / "hidden" / answers_file(home, prof.name, hidden_key(model, fp, dtype)).stem
    hidden_cached(model, samples, hidden_dir, on_event)

    scripts = ScriptRows(script_table(tokenizer, target.vocab_size), m) if m > 0 else None
    rows_of = ContextRows(target, RankedHead(target, art.ranking, art.k), True, scripts)
    overall, by_category = Row(), {}
    amp = torch.autocast(target.device.type, dtype=model.dtype, enabled=model.dtype != torch.float32)
    on_event(Started("eval", "the head's acceptance", len(samples)))
    done = [0]
    beat = Beat(lambda: on_event(Progress("eval", done[0])))
    try:
        with beat, amp, torch.no_grad():
            for (p, ids), s in zip(encoded, samples):
                rows_of.reset()
                rows_of.see(ids)
                row_ids = rows_of.row_ids()
                weight = target.head.weight.detach()[row_ids]
                rows = torch.full((target.vocab_size,), -100, dtype=torch.long, device=row_ids.device)
                rows[row_ids] = torch.arange(len(row_ids), device=row_ids.device)
                _, st = sequence_loss(art.head, target.embed, weight, rows, s, o.depth, 0.6, "tokens")
                answer = torch.tensor(s.ids[s.answer_start:], dtype=torch.long, device=rows.device)
                inside = int((rows[answer] >= 0).sum())
                for row in (overall, by_category.setdefault(p.category, Row())):
                    row.add(st.chain_hits, st.chain_seen, len(answer), inside, rows_of.script)
                done[0] += 1
                beat()
        on_event(Progress("eval", done[0]))
    finally:
        on_event(Ended("eval"))
    rep = EvalReport(path, prof.target, dtype, art.k, m, overall, by_category,
                     sorted(overlap.flagged), bool(overlap.unchecked), trained, skipped, resumed)
    if not rep.flagged and not rep.unchecked:
        from specscope.train.eval_record import record_eval

        try:
            record_eval(o, rep)
        except OSError as e:  # a head in a folder we may not write: the numbers are still printed
            on_event(Note(f"could not record the evaluation beside the head: {e}", warning=True))
    return rep
