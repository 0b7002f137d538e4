"""Load a target and a drafter from a source string.

Sources:
  embedded:NAME       the embedded GGUF pair (see embedded.py), converted once per cache dtype
                      (bf16, or float32 for float32/float16 runs) to safetensors
  tiny-random:ROLE    tiny seeded models (ROLE: target or draft), no download
  a local directory   any transformers causal LM saved with save_pretrained
  anything else       a Hugging Face hub id
"""
from __future__ import annotations

import os

import torch

from specscope.core.embedded import Progress, ensure_embedded
from specscope.core.errors import SpecScopeError
from specscope.core.lm import CachedLM

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise SpecScopeError(f"unknown dtype '{name}' (choose from {', '.join(DTYPES)})")
    return DTYPES[name]


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SpecScopeError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    if name.startswith("mps") and not torch.backends.mps.is_available():
        raise SpecScopeError(f"--device {name}: MPS is not available on this machine")
    try:
        return torch.device(name)
    except RuntimeError:
        raise SpecScopeError(f"unknown device '{name}' (use cpu, cuda or cuda:N)") from None


def _local_dir(source: str, progress: Progress | None, dtype: str = "bfloat16") -> str:
    if source.startswith("embedded:"):
        return str(ensure_embedded(source.split(":", 1)[1], dtype, progress))
    return source


def load_causal_lm(source: str, dtype: str = "float32", device: str = "cpu",
                   progress: Progress | None = None, seed: int = 0) -> torch.nn.Module:
    torch_dtype, torch_device = resolve_dtype(dtype), resolve_device(device)
    if source.startswith("tiny-random:"):
        from specscope.core.tiny import tiny_model

        role = source.split(":", 1)[1]
        if role not in ("target", "draft"):
            raise SpecScopeError(f"unknown tiny-random model '{role}' (use target or draft)")
        model = tiny_model(role, seed)
    else:
        from transformers import AutoModelForCausalLM

        path = _local_dir(source, progress, dtype)
        if progress:
            progress(f"loading {source}", 0, None)
        try:
            # Straight in the run's dtype: transformers memory-maps the safetensors and casts
            # tensor by tensor (none at all when the file holds that dtype, as the embedded
            # cache does), so no float32 model is ever materialised to be cast afterwards.
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        except (OSError, ValueError) as e:
            where = "directory" if os.path.isdir(path) else "Hugging Face hub id"
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SpecScopeError(f"could not load model from {where} '{source}': {first}") from None
    return model.to(device=torch_device, dtype=torch_dtype).eval()  # no-op unless tiny-random


def load_tokenizer(source: str, progress: Progress | None = None, dtype: str = "bfloat16"):
    """The tokenizer of `source`; for an embedded model, from the cache a `dtype` run reads (so
    a float32 run does not convert a bf16 cache just for its tokenizer)."""
    if source.startswith("tiny-random:"):
        from specscope.core.tiny import tiny_tokenizer

        return tiny_tokenizer()
    from transformers import AutoTokenizer

    path = _local_dir(source, progress, dtype)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpecScopeError(f"could not load the tokenizer of '{source}': {first}") from None


# the files that define a vocabulary (not the chat template: a drafter's may differ, harmlessly)
VOCAB_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
               "merges.txt", "tokenizer.model", "added_tokens.json")


def same_tokenizer_files(a: str, b: str, dtype: str = "bfloat16") -> bool:
    """Whether two sources are local directories holding byte-identical vocabulary files (as a
    model family's sizes do), so the target's tokenizer stands for the drafter's in the vocabulary
    check: parsing a 150k-token vocabulary takes over a second. False whenever in doubt: the
    caller then loads both."""
    if any(s.startswith("tiny-random:") for s in (a, b)):
        return False
    from pathlib import Path

    da, db = Path(_local_dir(a, None, dtype)), Path(_local_dir(b, None, dtype))
    if not (da.is_dir() and db.is_dir() and (da / "tokenizer.json").is_file()):
        return False
    for name in VOCAB_FILES:
        fa, fb = da / name, db / name
        if fa.is_file() != fb.is_file():
            return False
        if fa.is_file() and (fa.stat().st_size != fb.stat().st_size
                             or fa.read_bytes() != fb.read_bytes()):
            return False
    return True


def eos_ids(tokenizer, model: torch.nn.Module, extra: list[str] = ()) -> set[int]:
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = getattr(model, "generation_config", None)
    gen_eos = getattr(gen, "eos_token_id", None) if gen is not None else None
    if isinstance(gen_eos, int):
        ids.add(gen_eos)
    elif gen_eos:
        ids.update(int(x) for x in gen_eos)
    vocab = tokenizer.get_vocab()
    for token in extra:
        if token not in vocab:
            raise SpecScopeError(f"stop token '{token}' is not in the tokenizer's vocabulary")
        ids.add(vocab[token])
    return ids


def check_vocab_match(target: CachedLM, drafter: CachedLM, target_tok, draft_tok) -> None:
    if len(target_tok) != len(draft_tok) or target_tok.get_vocab() != draft_tok.get_vocab():
        raise SpecScopeError(
            f"drafter and target vocabularies do not match ({len(draft_tok)} vs {len(target_tok)} "
            "tokens): a draft model must share the target's tokenizer")
    if drafter.vocab_size < len(target_tok) or target.vocab_size < len(target_tok):
        raise SpecScopeError("a model's head is smaller than the tokenizer's vocabulary")
    check_head_widths(target.vocab_size, drafter.vocab_size)


def check_head_widths(target_rows: int, drafter_rows: int) -> None:
    """A drafter's head may be narrower than the target's (q is zero on the rows it lacks), not
    wider: it could draft a row the target has no token for, and its q would lose the mass of
    those rows."""
    if drafter_rows > target_rows:
        raise SpecScopeError(f"the drafter's head has {drafter_rows} rows, the target's "
                             f"{target_rows}: a drafter wider than its target is not supported")
