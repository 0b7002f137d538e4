"""Sources for the llama.cpp backend: which GGUF file a profile's source names, its tokenizer,
and the check that the two agree.

  embedded:NAME       the embedded pair's GGUF as shipped, assembled once (embedded.ensure_gguf)
  tiny-random:ROLE    the tiny seeded model (tiny.py) written as float32 GGUF into the cache, so
                      both backends run the very same weights
  PATH.gguf           that file

The tokenizer stays the Hugging Face one the torch backend uses (chat template, decoding);
the GGUF's own vocabulary is checked against it at load.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from specscope.core.embedded import CACHE_DTYPES, Progress, cache_dir, converted_dir, ensure_gguf
from specscope.core.errors import SpecScopeError

SOURCES = "embedded:NAME, tiny-random:ROLE or a path to a .gguf file"


def is_gguf_source(source: str) -> bool:
    return source.startswith(("embedded:", "tiny-random:")) or source.lower().endswith(".gguf")


def check_gguf_source(source: str) -> None:
    if not is_gguf_source(source):
        raise SpecScopeError(f"the llama.cpp backend reads GGUF files ({SOURCES}); '{source}' is "
                             "not one (use --backend torch)")
    if source.lower().endswith(".gguf") and not Path(source).expanduser().is_file():
        raise SpecScopeError(f"GGUF file not found: {Path(source).expanduser()}")


def gguf_file(source: str, progress: Progress | None = None) -> Path:
    """The GGUF file a source names (assembled or written first where needed)."""
    check_gguf_source(source)
    kind, _, name = source.partition(":")
    if kind == "embedded":
        return ensure_gguf(name, progress)
    if kind == "tiny-random":
        return tiny_gguf(name)
    return Path(source).expanduser()


def tiny_gguf(role: str) -> Path:
    """tiny-random:ROLE as float32 GGUF in the cache, written once per version of the code that
    makes it (its name carries a hash of tiny.py, the corpus its tokenizer learns from and the
    writer), under a private name then renamed into place."""
    from specscope.core import gguf_write, tiny

    if role not in ("target", "draft"):
        raise SpecScopeError(f"unknown tiny-random model '{role}' (use target or draft)")
    digest = hashlib.sha256()
    for source in (tiny.__file__, tiny.CORPUS, gguf_write.__file__):
        digest.update(Path(source).read_bytes())
    final = cache_dir() / "models" / f"tiny-random-{role}-{digest.hexdigest()[:12]}.gguf"
    if final.is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.{os.getpid()}.gguf")
    try:
        gguf_write.write_tiny_gguf(tmp, role)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def gguf_tokenizer(source: str, progress: Progress | None = None):
    """The Hugging Face tokenizer of a GGUF source: the tiny one; an embedded model's from its
    converted cache when one exists, else read from the GGUF (no weights converted)."""
    from specscope.core.models import load_tokenizer

    kind, _, name = source.partition(":")
    if kind == "tiny-random":
        return load_tokenizer(source)
    if kind == "embedded":
        for dtype in CACHE_DTYPES:
            if converted_dir(name, dtype) is not None:
                return load_tokenizer(source, progress, dtype)
    path = gguf_file(source, progress)
    if progress:
        progress(f"reading the tokenizer of {path.name}", 0, None)
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpecScopeError(f"could not read the tokenizer of {path}: {first}") from None


def check_vocab(lm, tokenizer, source: str, samples: int = 97) -> None:
    """The GGUF's vocabulary must be the tokenizer's: as many rows at least, and the same token
    text at a spread of ids (byte-level BPE stores 'Ġthe' in both)."""
    n = len(tokenizer)
    if lm.vocab_size < n:
        raise SpecScopeError(f"{source}: the GGUF has {lm.vocab_size} tokens, its tokenizer {n}: "
                             "not the same vocabulary")
    ids = sorted({round(i * (n - 1) / (samples - 1)) for i in range(samples)})
    theirs = tokenizer.convert_ids_to_tokens(ids)
    for i, text in zip(ids, theirs):
        if text is not None and lm.token_text(i) != text:
            raise SpecScopeError(f"{source}: token {i} is {lm.token_text(i)!r} in the GGUF and "
                                 f"{text!r} in the tokenizer: not the same vocabulary")


def load_gguf_lm(source: str, progress: Progress | None = None, **kwargs):
    """A LlamaCppLM over the source's GGUF (see llamacpp.py)."""
    from specscope.core.llamacpp import LlamaCppLM, binding

    binding()  # one line, before anything is assembled, when the binding is missing
    path = gguf_file(source, progress)
    if progress:
        progress(f"loading {source} (llama.cpp)", 0, None)
    return LlamaCppLM(path, **kwargs)
