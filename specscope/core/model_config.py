"""A model's vocabulary size and context window from its config alone, without its weights.

Options such as `trim --top-k` or `generate -n` are checked against these numbers before any
model loads (a real pair takes tens of seconds to load). Best effort: where the config cannot be
read without loading, converting or downloading (an embedded model not yet converted, a hub id
not in the local cache), the answer is None and the checks after loading still apply.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelShape:
    vocab_size: int
    max_positions: int | None  # the context window, None where the config does not say


def _from_config(config) -> ModelShape | None:
    config = getattr(config, "get_text_config", lambda: config)()
    vocab = getattr(config, "vocab_size", None)
    if not isinstance(vocab, int) or vocab < 1:
        return None
    window = getattr(config, "max_position_embeddings", None)
    return ModelShape(vocab, window if isinstance(window, int) and window > 0 else None)


def read_shape(source: str) -> ModelShape | None:
    """The shape of the model a profile names (same sources as models.load_causal_lm)."""
    try:
        if source.startswith("tiny-random:"):
            from specscope.core.tiny import tiny_config

            role = source.split(":", 1)[1]
            return _from_config(tiny_config(role)) if role in ("target", "draft") else None
        from transformers import AutoConfig

        if source.startswith("embedded:"):
            from specscope.core.embedded import CACHE_DTYPES, converted_dir

            name = source.split(":", 1)[1]
            # any converted copy has the config (the dtype does not change the shape)
            path = next((p for d in CACHE_DTYPES if (p := converted_dir(name, d))), None)
            if path is None:
                return None  # not converted yet: the GGUF slices hold it, we do not convert here
            return _from_config(AutoConfig.from_pretrained(str(path)))
        if os.path.isdir(source):
            return _from_config(AutoConfig.from_pretrained(source))
        return _from_config(AutoConfig.from_pretrained(source, local_files_only=True))
    except Exception:  # unreadable here: loading the model reports the real problem
        return None


# The embedded pair's shapes (Qwen2.5-Coder 1.5B / 0.5B Instruct, as their GGUF headers and
# config.json say), for measuring passes before the first conversion has written a config.json.
EMBEDDED_SHAPES = {
    "qwen2.5-coder-1.5b-instruct": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                        num_attention_heads=12, num_key_value_heads=2),
    "qwen2.5-coder-0.5b-instruct": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                        num_attention_heads=14, num_key_value_heads=2),
}


def read_config(source: str):
    """A model's transformers config without its weights (same sources as read_shape), or None."""
    try:
        if source.startswith("tiny-random:"):
            from specscope.core.tiny import tiny_config

            return tiny_config(source.split(":", 1)[1])
        from transformers import AutoConfig, Qwen2Config

        if source.startswith("embedded:"):
            from specscope.core.embedded import CACHE_DTYPES, converted_dir

            name = source.split(":", 1)[1]
            path = next((p for d in CACHE_DTYPES if (p := converted_dir(name, d))), None)
            if path is not None:
                return AutoConfig.from_pretrained(str(path))
            if name in EMBEDDED_SHAPES:
                return Qwen2Config(vocab_size=151936, max_position_embeddings=32768,
                                   tie_word_embeddings=True, **EMBEDDED_SHAPES[name])
            return None
        if os.path.isdir(source):
            return AutoConfig.from_pretrained(source)
        return AutoConfig.from_pretrained(source, local_files_only=True)
    except Exception:  # unreadable here: loading the model reports the real problem
        return None
