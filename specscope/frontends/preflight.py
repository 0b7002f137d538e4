"""Everything that can be checked before any model loads, with one-line errors.

Loading a real pair takes tens of seconds (minutes the first time), so every option that can be
judged without the weights is judged here first: dtype and device, the method against the
profile, a trimmed artifact (its safetensors header only), numbers against the models' configs
(vocabulary size, context window; see core/model_config.py), and whether the outputs and the
model cache can be written. Commands call these while they validate their options, before any
loading starts; the checks after loading (the prompt's length, an artifact's fingerprints) stay.
"""
from __future__ import annotations

import json
from pathlib import Path

from specscope.core.errors import SpecScopeError
from specscope.core.model_config import ModelShape, read_shape
from specscope.core.models import resolve_device, resolve_dtype
from specscope.drafting import check_drafting
from specscope.outputs import check_output_dir
from specscope.profiles import Profile
from specscope.session import METHODS, NEEDS_DRAFTER, NEEDS_MTP_HEAD, mtp_head, no_mtp_head


def check_options(profile: Profile, method: str | None, dtype: str | None, device: str | None,
                  vocab_top_k: int | None = None, trimmed=None,
                  max_new_tokens: int | None = None) -> None:
    """Fail fast, before minutes of model loading, on options that cannot work."""
    if method is None and profile.method != "auto":
        method = profile.method  # a profile's named method (or an auto choice made already)
    if profile.backend == "llama.cpp":
        check_llamacpp(profile, method, dtype, device, trimmed)
    elif (dtype or profile.dtype) != "auto":  # auto: chosen from measurements before loading
        resolve_dtype(dtype or profile.dtype)
    resolve_device(device or profile.device)
    check_drafting(profile, method)
    if method is not None:
        if method not in METHODS:
            raise SpecScopeError(f"unknown method '{method}' (choose from {', '.join(METHODS)})")
        if method in NEEDS_DRAFTER and not profile.drafter:
            raise SpecScopeError(f"method '{method}' needs a drafter; profile '{profile.name}' has none")
        if method in NEEDS_MTP_HEAD and mtp_head(profile) is None:
            raise no_mtp_head(profile)
    artifact = trimmed or profile.trimmed
    if vocab_top_k is not None and not artifact and method not in NEEDS_MTP_HEAD:
        raise SpecScopeError("--vocab-top-k needs a frequency ranking: pass --trimmed PATH "
                             "(made by `specscope trim`)")
    if artifact:
        check_trimmed(artifact, profile, [vocab_top_k] if vocab_top_k is not None else [])
    if max_new_tokens is not None:
        check_new_tokens(profile, max_new_tokens, "-n/--max-new-tokens")
    check_model_cache(profile)


# a float GGUF's type -> the dtype that names it (a quantized GGUF has none)
GGUF_DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}


def check_llamacpp(profile: Profile, method: str | None, dtype: str | None, device: str | None,
                   trimmed=None) -> None:
    """What the llama.cpp backend cannot do, refused before the GGUF files load: the weights are
    the file's as stored (no other dtype, no --quant), it returns logits only (no method that
    reads hidden states), on the CPU, with an unbounded draft cache."""
    from specscope.core.llamacpp import binding, file_type
    from specscope.core.llamacpp_load import check_gguf_source, gguf_file
    from specscope.core.methods import NEEDS_HIDDEN

    binding()  # installed, or one line saying how
    for source in (profile.target, profile.drafter):
        if source:
            check_gguf_source(source)
    if method in NEEDS_HIDDEN:
        raise SpecScopeError(f"method '{method}' reads the target's hidden states; the llama.cpp "
                             "backend returns logits only (use --backend torch)")
    if (device or profile.device) != "cpu":
        raise SpecScopeError("the llama.cpp backend runs on the CPU here (--device cpu)")
    if profile.quant != "none" or profile.draft_quant not in ("none", "auto"):
        what = f"--quant {profile.quant}" if profile.quant != "none" else f"--draft-quant {profile.draft_quant}"
        raise SpecScopeError(f"{what}: the llama.cpp backend runs the GGUF's weights as stored "
                             "(use --backend torch to quantize)")
    if trimmed or profile.trimmed:
        raise SpecScopeError("a trimmed drafter head (--trimmed) is checked against the torch "
                             "model's head: use --backend torch")
    wanted = dtype or profile.dtype
    if wanted not in ("auto", "gguf"):
        stored = file_type(gguf_file(profile.target))
        if GGUF_DTYPES.get(stored) != wanted:
            raise SpecScopeError(f"--dtype {wanted}: the llama.cpp backend computes with the GGUF's "
                                 f"weights as stored ({stored}); drop --dtype or use --backend torch")


def shape_of(source: str | None) -> ModelShape | None:
    return read_shape(source) if source and "://" not in source else None  # a served target: unknown here


def check_new_tokens(profile: Profile, n: int, option: str) -> None:
    """n new tokens must fit the target's context window (with a prompt of at least one token)."""
    shape = shape_of(profile.target)
    if shape is None or shape.max_positions is None or n < shape.max_positions:
        return
    raise SpecScopeError(f"{option} {n} does not fit: the target's context window is "
                         f"{shape.max_positions} tokens, prompt included, so at most "
                         f"{shape.max_positions - 1} new tokens (fewer after a longer prompt)")


def check_drafter_vocab(profile: Profile, top_k: int) -> None:
    """`trim --top-k` against the drafter's vocabulary size."""
    shape = shape_of(profile.drafter)
    if shape is not None and top_k > shape.vocab_size:
        raise SpecScopeError(f"--top-k {top_k} is larger than the drafter's vocabulary "
                             f"({shape.vocab_size} tokens)")


def check_trimmed(path, profile: Profile, sizes: list[int]) -> None:
    """A VocabTrim artifact: it exists, is one of ours, fits the drafter's vocabulary, and every
    requested vocabulary size is within its ranking. Reads the safetensors header only."""
    from safetensors import safe_open

    from specscope.core.vocab import FORMAT

    path = Path(path).expanduser()
    if not profile.drafter:
        raise SpecScopeError("a trimmed head needs a profile with a drafter")
    if not path.is_file():
        raise SpecScopeError(f"trimmed head not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("specscope", "{}"))
            rows = f.get_slice("ranking").get_shape()[0]
    except Exception as e:
        raise SpecScopeError(f"{path}: not a specscope trimmed head ({type(e).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SpecScopeError(f"{path}: not a specscope trimmed head (format "
                             f"{meta.get('format') if isinstance(meta, dict) else None!r})")
    shape = shape_of(profile.drafter)
    if shape is not None and rows != shape.vocab_size:
        raise SpecScopeError(f"{path}: made for another drafter (its ranking covers {rows} tokens, "
                             f"the vocabulary of {profile.drafter} has {shape.vocab_size})")
    for k in sizes:
        if not 1 <= k <= rows:
            raise SpecScopeError(f"vocab top-k must be between 1 and {rows}, got {k}")


def check_model_cache(profile: Profile) -> None:
    """An embedded model converts into the cache on first use: that folder must be writable."""
    from specscope.core.embedded import cache_dir, is_converted

    for source in (profile.target, profile.drafter):
        if source and source.startswith("embedded:") and not is_converted(source.split(":", 1)[1]):
            check_output_dir(cache_dir() / "models", "the model cache")
            return
