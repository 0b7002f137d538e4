"""Quantized weights kept on disk, so a model is quantized once, not at every load.

Quantizing the 0.5B drafter to int4 takes seconds of CPU, and reading its bf16 weights to do it
makes them resident beside the int4 copy. A later load instead memory-maps the saved codes
(`quant/NAME-MODE-KEY.safetensors` in specscope's cache) and swaps them in for the Linear
layers before anything reads those layers' bf16 weights, which then never leave the disk.

The key covers everything the saved tensors depend on, in two parts, `FAMILY-VERSION`: the
family is what a run asks for (the source directory, the mode, the int4 group size, the dtype),
the version what those inputs are now (the source weights: the embedded cache's stamp, or each
safetensors file's name, size and modification time; torch's version, since the int4 kernel's
packed layout is torch's own). Saving removes only the files of the same family with another
version (superseded: rewritten weights, another torch), never another family's: a float32 and a
bfloat16 run, or an int8 and an int4 one, keep their own files side by side. Only models loaded
from a local directory on the CPU are cached; a hub id or a tiny model quantizes in memory.
A file that cannot be read, or that does not fit the model, is ignored and written again.
"""
from __future__ import annotations

import glob
import hashlib
import json
import re
from pathlib import Path

import torch
from torch import nn

from specscope.core.embedded import STAMP, cache_dir
from specscope.core.files import atomic_write
from specscope.core.quant import (INT4_GROUP, Int4Linear, Int8Linear, QuantLinear, W8A8Linear, quantize_model,
                                  rowwise_for_w8a8)

FORMAT = "specscope-quant/1"
BUFFERS = {"Int8Linear": ("q", "scale", "bias"), "W8A8Linear": ("q", "scale", "bias"), "Int4Linear": ("nibbles", "pairs", "packed", "bias")}


def _digest(parts: list[str], n: int) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:n]


def source_key(model: nn.Module, mode: str, group_size: int = INT4_GROUP) -> str | None:
    """What the quantized tensors of `model` depend on, hashed as FAMILY-VERSION (see the
    module's docstring); None where the source is not a local directory of safetensors (nothing
    stable to key on) or the model is not on the CPU."""
    src = Path(str(getattr(model.config, "_name_or_path", "") or ""))
    param = next(model.parameters())
    if not src.is_dir() or param.device.type != "cpu":
        return None
    stamp = src / STAMP
    if stamp.is_file():
        weights = stamp.read_text()
    else:
        files = sorted(src.glob("*.safetensors"))
        if not files:
            return None
        weights = json.dumps([(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files])
    family = _digest([FORMAT, str(src.resolve()), mode, str(group_size), str(param.dtype),
                      kernel_layout(mode, param.device)], 12)
    return f"{family}-{_digest([weights, torch.__version__], 16)}"


def kernel_layout(mode: str, device) -> str:
    """What decides the int4 codes' packed layout besides torch's version: the CPU kernel level
    torch dispatches to (its AVX-512 and AVX2 kernels pack differently: codes packed under one
    and run under the other are garbage; seen as a drafter whose every token was rejected after
    a run with ATEN_CPU_CAPABILITY=avx2). int8 codes are plain and the same everywhere."""
    if mode != "int4" or getattr(device, "type", str(device)) != "cpu":
        return ""
    try:
        return torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch
        return "unknown"


def cache_path(model: nn.Module, mode: str, key: str) -> Path:
    name = Path(str(model.config._name_or_path)).name
    return cache_dir() / "quant" / f"{name}-{mode}-{key}.safetensors"


def quantize_cached(model: nn.Module, mode: str, group_size: int = INT4_GROUP,
                    progress=None) -> str:
    """Quantize `model` in place (like quant.quantize_model), through the cache where it can.
    Returns 'loaded', 'saved' or 'memory' (no cache for this model)."""
    key = source_key(model, mode, group_size)
    path = None if key is None else cache_path(model, mode, key)
    if path is not None and path.is_file() and _load_into(model, path, mode):
        return "loaded"
    if progress:
        progress(f"quantizing {Path(str(model.config._name_or_path)).name} to {mode} (once)", 0, None)
    quantize_model(model, mode, group_size)
    if path is None:
        return "memory"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _save(model, path, mode)
        _remove_superseded(path, model, mode, key)
    except OSError:
        return "memory"  # a read-only cache costs the next load a quantization, nothing more
    return "saved"


def _remove_superseded(path: Path, model: nn.Module, mode: str, key: str) -> None:
    """Remove the files of `key`'s family with another version, and those named the way this
    cache named its files before keys had a family (NAME-MODE-<20 hex digits>: no run reads
    them any more). Files of other families stay."""
    family = key.split("-")[0]
    prefix = f"{Path(str(model.config._name_or_path)).name}-{mode}-"
    for old in path.parent.glob(f"{glob.escape(prefix)}*.safetensors"):
        rest = old.name[len(prefix):-len(".safetensors")]
        if old != path and (rest.startswith(family + "-") or re.fullmatch(r"[0-9a-f]{20}", rest)):
            old.unlink(missing_ok=True)


def _save(model: nn.Module, path: Path, mode: str) -> None:
    from safetensors.torch import save_file

    tensors, layers = {}, {}
    for name, module in model.named_modules():
        if isinstance(module, QuantLinear):
            kind = type(module).__name__
            layers[name] = {"kind": kind, "out": module.out_features,
                            "group": getattr(module, "group_size", None)}
            for buf in BUFFERS[kind]:
                t = getattr(module, buf)
                if t is not None:
                    tensors[f"{name}.{buf}"] = t.detach().contiguous()
    meta = {"format": FORMAT, "mode": mode, "layers": layers}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"specscope": json.dumps(meta)}))


def _load_into(model: nn.Module, path: Path, mode: str) -> bool:
    """Swap the saved quantized layers in for the model's Linears (memory-mapped, no copy).
    False, with the model untouched, if the file does not fit this model."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("specscope", "{}"))
            names = set(f.keys())
            tensors = {k: f.get_tensor(k) for k in names}
    except Exception:
        return False
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    layers = meta.get("layers", {})
    if meta.get("format") != FORMAT or meta.get("mode") != mode or set(layers) != set(linears):
        return False
    swaps = []
    for name, info in layers.items():
        get = {buf: tensors.get(f"{name}.{buf}") for buf in BUFFERS.get(info.get("kind"), ())}
        if info["kind"] in ("Int8Linear", "W8A8Linear") and get.get("q") is not None:
            new = (W8A8Linear if info["kind"] == "W8A8Linear" else Int8Linear)(
                get["q"], get["scale"], get["bias"])
        elif info["kind"] == "Int4Linear" and get.get("nibbles") is not None:
            new = Int4Linear(get["nibbles"], get["pairs"], info["group"], get["bias"], get["packed"],
                             out_features=info["out"])
        else:
            return False
        if (new.in_features, new.out_features) != (linears[name].in_features,
                                                    linears[name].out_features):
            return False
        swaps.append((name, new))
    for name, new in swaps:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, new)
    if mode == "w8a8":
        rowwise_for_w8a8(model)
    return True
