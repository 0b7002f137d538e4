"""Settings the engine reads at every step boundary; a UI may change them mid-generation."""
from __future__ import annotations

from dataclasses import dataclass, field

from specscope.core.errors import SpecScopeError
from specscope.core.sampling import Shaping

MAX_DRAFT_LEN = 32
MAX_REFINE_STEPS = 16
ADAPTIVE_RULES = ("cost", "heuristic", "learned")


@dataclass
class Controls:
    method: str = "draft"  # a key of the engine's drafters
    draft_len: int = 5  # fixed length, or the starting/maximum length when adaptive
    adaptive: bool = False  # `--draft-len auto`: the engine picks each step's length
    # "cost" (expected tokens per second), "heuristic" (+2 / -1) or "learned" (H-RAD's predictor)
    adaptive_rule: str = "cost"
    temperature: float = 0.0  # 0: greedy
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    vocab_top_k: int | None = None  # drafter vocabulary size, with a VocabTrim ranking loaded
    max_new_tokens: int = 256
    refine_steps: int | None = None  # jacobi: parallel passes per block; None: auto
    # the draft model's KV cache: sinks + the last draft_window tokens (window.py); 0: unbounded
    draft_window: int = 0
    stop: list[str] = field(default_factory=list)
    # the model drafter drafts the next step while the target verifies (a drafter worker,
    # core/workers.py); False: drafting and verification take turns
    overlap: bool = False

    @property
    def shaping(self) -> Shaping:
        return Shaping(self.temperature, self.top_k, self.top_p)

    def validate(self) -> None:
        if not 0 <= self.draft_len <= MAX_DRAFT_LEN:
            raise SpecScopeError(f"draft length must be between 0 and {MAX_DRAFT_LEN}, got {self.draft_len}")
        if self.temperature < 0:
            raise SpecScopeError(f"temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise SpecScopeError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise SpecScopeError(f"top-k must be >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise SpecScopeError(f"max new tokens must be >= 1, got {self.max_new_tokens}")
        if self.adaptive_rule not in ADAPTIVE_RULES:
            raise SpecScopeError(f"adaptive rule must be cost, heuristic or learned, got '{self.adaptive_rule}'")
        if self.refine_steps is not None and not 1 <= self.refine_steps <= MAX_REFINE_STEPS:
            raise SpecScopeError(f"refine steps must be between 1 and {MAX_REFINE_STEPS} or auto, "
                                 f"got {self.refine_steps}")
        if self.draft_window < 0:
            raise SpecScopeError(f"draft window must be >= 0 (0: unbounded), got {self.draft_window}")
        if self.vocab_top_k is not None and self.vocab_top_k < 1:
            raise SpecScopeError(f"vocab top-k must be >= 1, got {self.vocab_top_k}")
