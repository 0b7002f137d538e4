"""What a benchmark runs: the grid of configurations (method x draft length x vocab size).

The baseline (`ar`, plain autoregressive decoding through the same loop) is not part of the grid:
it always runs, once per prompt, before the configurations. `--reference hf` adds rows that run
transformers' own generation on the same models (see hf.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from specscope.core.controls import MAX_DRAFT_LEN
from specscope.core.errors import SpecScopeError

BASELINE = "ar"
OVERALL = "overall"  # the row over all prompts, after the per-category rows
AUTO = "auto"
# Our methods that have a transformers counterpart, and the reference rows they bring.
HF_ANALOGUES = {"draft": ("hf-assisted", "hf-assisted-heuristic"), "lookup": ("hf-prompt-lookup",)}
HF_PLAIN = "hf-plain"


@dataclass(frozen=True)
class Config:
    method: str  # a key of session.METHODS, or one of the hf-* reference rows
    draft_len: int | str | None = None  # an int, "auto[:rule]" (adaptive), or None (no drafting)
    vocab_top_k: int | None = None  # drafter vocabulary size (None: full)
    kind: str = "ours"  # "ours": specscope's loop; "hf": transformers' generate
    # "overlapped": the drafter's worker drafts ahead while the target verifies (--overlap);
    # "serial": drafting and verification take turns
    drafting: str = "serial"

    @property
    def name(self) -> str:
        parts = [self.method]
        if self.draft_len is not None:
            parts.append(f"k={self.draft_len}")
        if self.vocab_top_k is not None:
            parts.append(f"v={self.vocab_top_k}")
        if self.drafting != "serial":
            parts.append(self.drafting)
        return " ".join(parts)

    def as_dict(self) -> dict:
        return {"config": self.name, "method": self.method, "draft_len": self.draft_len,
                "vocab_top_k": self.vocab_top_k, "kind": self.kind, "drafting": self.drafting}


def split_values(values: list[str] | None) -> list[str]:
    """`--x a,b --x c` and `--x a --x b,c` both give [a, b, c]."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def parse_methods(values: list[str] | None, known: dict[str, str]) -> list[str]:
    methods = list(dict.fromkeys(split_values(values)))
    for m in methods:
        if m not in known:
            raise SpecScopeError(f"unknown method '{m}' (choose from {', '.join(known)})")
    return methods


def parse_draft_lens(values: list[str] | None) -> list[int | str]:
    out: list[int | str] = []
    for v in split_values(values):
        if v.lower() == "learned":  # H-RAD's predictor: the rule auto:learned
            item: int | str = "auto:learned"
        elif v.lower() == AUTO or v.lower().startswith(AUTO + ":"):
            item = v.lower()  # auto[:rule]: the rule is checked by Controls.validate
        else:
            try:
                item = int(v)
            except ValueError:
                raise SpecScopeError(f"--draft-len takes integers, 'auto' or 'auto:RULE', got '{v}'") from None
            if not 0 <= item <= MAX_DRAFT_LEN:
                raise SpecScopeError(f"draft length must be between 0 and {MAX_DRAFT_LEN}, got {item}")
        if item not in out:
            out.append(item)
    return out


def is_auto(draft_len) -> bool:
    return isinstance(draft_len, str) and draft_len.startswith(AUTO)


def parse_vocab_sizes(values: list[str] | None) -> list[int | None]:
    out: list[int | None] = []
    for v in split_values(values):
        if v.lower() == "full":
            item = None
        else:
            try:
                item = int(v)
            except ValueError:
                raise SpecScopeError(f"--vocab-top-k takes integers or 'full', got '{v}'") from None
            if item < 1:
                raise SpecScopeError(f"vocab top-k must be >= 1, got {item}")
        if item not in out:
            out.append(item)
    return out


def build_grid(methods: list[str], draft_lens: list[int | str], vocab_sizes: list[int | None],
               trims_vocab) -> list[Config]:
    """Every method x draft length x vocab size, minus the baseline and axes a method ignores.

    trims_vocab(method) says whether a method's drafter has a vocabulary to trim; the others run
    once per draft length, with vocab_top_k None.
    """
    configs: list[Config] = []
    for method in methods:
        if method == BASELINE:
            continue
        sizes = vocab_sizes if trims_vocab(method) else [None]
        for k in draft_lens:
            for v in sizes:
                c = Config(method, k, v)
                if c not in configs:
                    configs.append(c)
    return configs


def overlapped_too(configs: list[Config], methods) -> list[Config]:
    """Each configuration of a method that can draft ahead, then the same overlapped."""
    from dataclasses import replace

    out = []
    for c in configs:
        out.append(c)
        if c.method in methods and c.kind == "ours":
            out.append(replace(c, drafting="overlapped"))
    return out


def hf_grid(methods: list[str], draft_lens: list[int | str], default_len: int,
            has_drafter: bool) -> list[Config]:
    """transformers' rows: plain generate, plus the counterpart of each benchmarked method."""
    lens = [k for k in draft_lens if isinstance(k, int) and k > 0] or [default_len]
    configs = [Config(HF_PLAIN, None, None, "hf")]
    for method in methods:
        for row in HF_ANALOGUES.get(method, ()):
            if row.startswith("hf-assisted") and not has_drafter:
                continue
            configs += [Config(row, k, None, "hf") for k in lens]
    return list(dict.fromkeys(configs))
