"""What `mtp train` trains and selects on, besides the target's answers: --corpus text (read,
cut into sequences, and its Spec-Bench prompts, which must not be prompts held apart), the keys
of the prompts held apart for the selection and the estimate, and where the caches of answers
and hidden states live beside the artifact."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from specscope.core.errors import SpecScopeError
from specscope.core.mtp_train import Sample, corpus_chunks
from specscope.prompts import Prompt
from specscope.train.caches import ids_digest


def read_corpus(paths: list[Path]) -> list[tuple[Path, str]]:
    """(path, text) per --corpus file: plain text as it is; JSONL, one document a line: the
    line's text fields (TEXT_FIELDS: a Spec-Bench line's turns and reference) where it has any,
    else every string field."""
    out = []
    for path in paths:
        path = Path(path).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecScopeError(f"--corpus: file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise SpecScopeError(f"--corpus: cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
        if path.suffix in (".jsonl", ".json"):
            docs = []
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    docs.append("\n\n".join(_strings(_text_fields(json.loads(line)))))
                except ValueError:
                    raise SpecScopeError(f"--corpus: {path} line {n} is not JSON") from None
            text = "\n\n".join(d for d in docs if d)
        if not text.strip():
            raise SpecScopeError(f"--corpus: no text in {path}")
        out.append((path, text))
    return out


TEXT_FIELDS = ("text", "content", "turns", "reference", "prompt", "response", "answer")


def _text_fields(value):
    """A JSON object's text fields (ids and category names are not text to learn from), or the
    whole value when it has none."""
    if isinstance(value, dict) and any(k in value for k in TEXT_FIELDS):
        return [value[k] for k in TEXT_FIELDS if k in value]
    return value


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def corpus_samples(tokenizer, texts: list[tuple[Path, str]], chunk: int, limit: int | None):
    """--corpus text as training sequences with no answer part (every position labelled by the
    target's own distribution): tokenized as it is, cut into `chunk`-token pieces, at most
    `limit` tokens in all."""
    out = []
    left = limit
    for _, text in texts:
        for piece in corpus_chunks(tokenizer.encode(text, add_special_tokens=False), chunk, left):
            out.append(Sample(piece, len(piece)))
            if left is not None:
                left -= len(piece)
    return out


def answers_file(out: Path, stem: str, key: list) -> Path:
    """The cache of generated answers beside the artifact: one file per writer model, dtype and
    answer length (`key`); answers are keyed by their prompt inside it."""
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    return out.parent / "data" / f"{stem}-{digest}.json"


def hidden_key(model, fp: dict, dtype: str) -> list:
    """What the target's hidden states depend on: its identity (source, shape, head rows), a
    checksum of its final norm (which fine-tuning the body moves too), dtype and device."""
    norm = getattr(getattr(model, "base_model", None), "norm", None)
    body = (hashlib.sha256(norm.weight.detach().float().cpu().numpy().tobytes()).hexdigest()[:16]
            if getattr(norm, "weight", None) is not None else "")
    return [fp, body, dtype, next(model.parameters()).device.type]


def prompt_key(ids: list[int]) -> str:
    return ids_digest(ids)


def held_apart(prompt_ids: list[list[int]], held: int) -> tuple[set[str], set[str]]:
    """(selection, estimate) keys: 2 x `held` prompts spread evenly over `prompt_ids` (every
    category gets its share), taken in turn for the selection and the estimate."""
    step = len(prompt_ids) / (2 * held)
    picked = [prompt_key(prompt_ids[int(i * step)]) for i in range(2 * held)]
    return set(picked[0::2]), set(picked[1::2])


def check_corpus(in_corpus: list, held: list, what: str) -> None:
    """Refuse a --corpus that holds prompts the head is selected or estimated on: it would train
    on them."""
    clash = {p.digest for p in in_corpus} & {p.digest for p in held}
    if clash:
        ids = [p.id for p in held if p.digest in clash]
        raise SpecScopeError(f"--corpus holds {len(ids)} prompts of {what} (ids "
                             f"{', '.join(ids[:8])}{' ...' if len(ids) > 8 else ''}): it would train "
                             "on them; leave them out of the corpus")


def corpus_prompts(paths: list[Path]) -> list:
    """The Spec-Bench prompts (lines with 'turns') of --corpus JSONL files, as Prompts: their
    ids and text digests are recorded, and checked against the prompts held apart."""
    out = []
    for path in paths:
        path = Path(path).expanduser()
        if path.suffix not in (".jsonl", ".json") or not path.is_file():
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                row = json.loads(line) if line.strip() else None
            except ValueError:
                continue  # read_corpus says so
            turns = row.get("turns") if isinstance(row, dict) else None
            turns = [turns] if isinstance(turns, str) else turns
            if isinstance(turns, list) and turns and isinstance(turns[0], str):
                out.append(Prompt(str(row.get("question_id", f"{path.name}:{n}")),
                                  str(row.get("category", "corpus")), turns[0]))
    return out
