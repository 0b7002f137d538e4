"""Builders for the llama.cpp backend's tests: GGUF files the tests write (the tiny-random pair,
or a pair over a few tokens for exact laws), decoders over them, and the backend's own plain
passes as the reference a law is computed from."""
import os
from types import SimpleNamespace

import pytest


def need_binding() -> None:
    """Skip the module without llama-cpp-python, except in CI: there a missing binding fails."""
    if not os.environ.get("CI"):
        pytest.importorskip("llama_cpp")


def few_token_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer of `vocab_size` tokens (single letters and one merge, which
    llama.cpp's loader asks for), to write GGUF models over a vocabulary an exact law can span."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate("abcdefghijklmnop"[:vocab_size - 1])}
    vocab["ab"] = vocab_size - 1
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("a", "b")]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def write_pair(directory, vocab_size: int = 1024, seed: int = 0, **model_kw):
    """The tiny target and drafter (core/tiny.py) as float32 GGUF files; returns their paths."""
    from specscope.core.gguf_write import write_gguf
    from specscope.core.tiny import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer() if vocab_size == 1024 else few_token_tokenizer(vocab_size)
    paths = []
    for role in ("target", "draft"):
        path = directory / f"{role}-v{vocab_size}-s{seed}.gguf"
        write_gguf(tiny_model(role, seed, vocab_size, **model_kw), tok, path)
        paths.append(path)
    return paths


def llama_lm(path, **kw):
    from specscope.core.llamacpp import LlamaCppLM

    return LlamaCppLM(path, **{"threads": 1, **kw})  # tiny models: one thread is fastest


def llama_decoder(paths, extra=None, tokenizer=None, eos_ids=(), **lm_kw):
    """A SpecDecoder over the pair on llama.cpp with every logits-only method; `extra(target,
    draft)` adds named drafters."""
    from specscope.core.drafters.base import NoDrafter
    from specscope.core.drafters.lookup import LookupDrafter
    from specscope.core.engine import SpecDecoder
    from specscope.session import model_factories
    from tests.core.helpers import IdTokenizer

    target, draft = llama_lm(paths[0], **lm_kw), llama_lm(paths[1], **lm_kw)
    factories = {"ar": NoDrafter, **model_factories(target, draft), "lookup": LookupDrafter}
    factories.update(extra(target, draft) if extra else {})
    return SpecDecoder(target, tokenizer or IdTokenizer(), factories, set(eos_ids))


class PlainPasses:
    """The backend's own plain decoding, standing in for a torch model where the law tests read
    one (`model(ids).logits`, `model.config.vocab_size`): every call empties a separate llama.cpp
    context and reads the whole context in one pass."""

    def __init__(self, lm) -> None:
        self.lm = lm
        self.config = SimpleNamespace(vocab_size=lm.vocab_size)

    def __call__(self, input_ids):
        ids = input_ids[0].tolist()
        self.lm.reset()
        return SimpleNamespace(logits=self.lm.forward(ids, len(ids))[None])
