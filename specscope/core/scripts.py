"""Language-aware drafting rows (FastMTP's language-aware vocabulary, by writing system).

A FastMTP head drafts over the first K rows of a ranking counted on the target's answers to the
calibration prompts (English text and code), plus the context's own tokens (core/context_rows.py).
Text in another writing system then has almost nothing to draft with: of the embedded target's
8,192 ranked rows, none is a Chinese token, 31 are Cyrillic. FastMTP keeps one vocabulary per
language and picks it by the input's language; here the choice is by writing system (script), read
from the committed tokens alone, and the script's rows need no data: a byte-level BPE tokenizer's
ids follow its merge order, roughly the frequency of the pieces in its own training text, so the
first M tokens of a script by id are its most common pieces.

- `ScriptTable`: every token's script (decoded from its bytes; a piece of a multi-byte character,
  or a token of mixed scripts, has none) and each script's tokens in id order.
- `dominant(ids)`: the script of a token sequence: the non-Latin script holding at least SHARE of
  its distinct script-bearing tokens (Latin: the ranking is already Latin text; None).
- `ScriptRows(table, m)`: the rows a context adds: the first m tokens of its dominant script.

The rows are a function of the committed ids, fixed for a whole proposal: q is zero outside
them, so verification stays exact whatever they are.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

# (name, first code point, last code point); a character outside them has no script here
RANGES = (
    ("han", 0x4E00, 0x9FFF), ("han", 0x3400, 0x4DBF), ("han", 0xF900, 0xFAFF),
    ("kana", 0x3040, 0x30FF), ("hangul", 0xAC00, 0xD7AF), ("hangul", 0x1100, 0x11FF),
    ("cyrillic", 0x0400, 0x04FF), ("arabic", 0x0600, 0x06FF), ("greek", 0x0370, 0x03FF),
    ("hebrew", 0x0590, 0x05FF), ("devanagari", 0x0900, 0x097F), ("thai", 0x0E00, 0x0E7F),
)
SCRIPTS = ("latin",) + tuple(dict.fromkeys(name for name, _, _ in RANGES))
LATIN, NONE, MIXED = 0, -1, -2
SHARE = 0.3  # a script is the context's when it holds this share of its script-bearing tokens
# Japanese text mixes kana and kanji: its rows are both, in id order
FAMILIES = {"kana": ("kana", "han")}


def char_script(ch: str) -> int:
    """The script code (index in SCRIPTS) of one character; NONE for digits, punctuation,
    spaces and letters of other scripts."""
    o = ord(ch)
    for name, lo, hi in RANGES:
        if lo <= o <= hi:
            return SCRIPTS.index(name)
    if ch.isalpha() and o < 0x250:
        return LATIN
    return NONE


def text_script(text: str) -> int:
    """One script for a token's text: the script of its letters when they share one, NONE when
    it has none, MIXED when they differ (kana with kanji counts as kana: Japanese)."""
    found = {char_script(ch) for ch in text} - {NONE}
    kana, han = SCRIPTS.index("kana"), SCRIPTS.index("han")
    if found == {kana, han}:
        return kana
    if len(found) == 1:
        return found.pop()
    return MIXED if found else NONE


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet, reversed: each printable stand-in -> its byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def token_texts(tokenizer, size: int) -> list[str | None]:
    """Each token id's text, or None where it is not whole UTF-8 (a piece of a character) or
    the tokenizer has no such id. Byte-level BPE tokens are read through their byte alphabet;
    other tokenizers through decode()."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(min(size, len(tokenizer)))))
    decoder = _byte_decoder()
    out: list[str | None] = []
    for i, piece in enumerate(pieces):
        text = None
        if piece is not None:
            try:
                text = bytes(decoder[ch] for ch in piece).decode("utf-8")
            except (KeyError, UnicodeDecodeError):
                if any(ch not in decoder for ch in piece):  # not byte-level BPE: decode it
                    text = tokenizer.decode([i])
                    text = None if "\ufffd" in text else text
        out.append(text)
    return out + [None] * (size - len(out))


@dataclass(frozen=True)
class ScriptTable:
    codes: torch.Tensor  # [V] int8: each token's script (SCRIPTS index), NONE or MIXED
    by_script: dict  # script name -> its token ids in id order (LongTensor)

    @classmethod
    def from_texts(cls, texts: list[str | None]) -> ScriptTable:
        codes = torch.tensor([NONE if t is None else text_script(t) for t in texts], dtype=torch.int8)
        by = {name: torch.nonzero(codes == i).flatten() for i, name in enumerate(SCRIPTS)}
        for name, members in FAMILIES.items():
            idx = [SCRIPTS.index(m) for m in members]
            by[name] = torch.nonzero(torch.isin(codes, torch.tensor(idx, dtype=torch.int8))).flatten()
        return cls(codes, by)

    def dominant(self, ids) -> str | None:
        """The non-Latin script of a token sequence (its distinct tokens), or None."""
        ids = torch.as_tensor(list(ids), dtype=torch.long)
        if not len(ids):
            return None
        codes = self.codes[ids.unique()].long()
        codes = codes[codes >= 0]
        if not len(codes):
            return None
        counts = torch.bincount(codes, minlength=len(SCRIPTS))
        counts[LATIN] = 0
        best = int(counts.argmax())
        return SCRIPTS[best] if counts[best] >= SHARE * len(codes) else None


_TABLES: dict[tuple[str, int], ScriptTable] = {}  # (tokenizer checksum, size) -> table


def script_table(tokenizer, size: int) -> ScriptTable:
    """The table of a tokenizer's `size` ids (the model's vocabulary; ids past the tokenizer's
    have no script), built once per tokenizer in a process (about half a second for 150k)."""
    from specscope.core.vocab import tokenizer_checksum

    key = (tokenizer_checksum(tokenizer), size)
    if key not in _TABLES:
        _TABLES[key] = ScriptTable.from_texts(token_texts(tokenizer, size))
    return _TABLES[key]


class ScriptRows:
    """The first `m` tokens of a context's dominant script, as extra drafting rows (0: off)."""

    def __init__(self, table: ScriptTable, m: int) -> None:
        self.table, self.m = table, m

    def script(self, ids) -> str | None:
        return self.table.dominant(ids) if self.m > 0 else None

    def rows(self, script: str | None) -> torch.Tensor:
        """Token ids, in id order (empty without a script)."""
        if script is None or self.m <= 0:
            return torch.empty(0, dtype=torch.long)
        return self.table.by_script[script][:self.m]
