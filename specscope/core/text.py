"""Incremental detokenisation: the text each new token adds, robust to multi-byte characters."""
from __future__ import annotations

WINDOW = 6  # tokens of left context used to decode the next piece


class IncrementalText:
    def __init__(self, tokenizer, prompt_ids: list[int]) -> None:
        self.tokenizer = tokenizer
        self.ids = list(prompt_ids[-WINDOW:])
        self.start = len(self.ids)  # generated ids start here
        self.pending = 0  # generated tokens whose text is not yet complete (split characters)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True,
                                     clean_up_tokenization_spaces=False)

    def push(self, token: int) -> str:
        """Append one token and return the text it completes ('' while a character is split)."""
        self.ids.append(token)
        end = len(self.ids) - 1 - self.pending
        left = self.ids[max(0, end - WINDOW):end]
        before = self._decode(left)
        after = self._decode(left + self.ids[end:])
        if after.endswith("\ufffd"):
            self.pending += 1
            return ""
        self.pending = 0
        return after[len(before):] if after.startswith(before) else after

    def token_text(self, token: int) -> str:
        """Display text of a single token (for drafts that may be rejected)."""
        return self.tokenizer.decode([token], skip_special_tokens=False,
                                     clean_up_tokenization_spaces=False)
