"""The quantized-weights cache: a second load memory-maps the codes the first one saved, gives
the same model, and never trusts a file that does not fit (other source, other mode, damage)."""
import os

import pytest
import torch

from specscope.core.lm import CachedLM
from specscope.core.models import load_causal_lm
from specscope.core.quant import Int4Linear, QuantLinear
from specscope.core.quant_cache import quantize_cached, source_key
from specscope.core.tiny import tiny_model


@pytest.fixture
def saved_model(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "draft"
    tiny_model("draft", 0).save_pretrained(src)
    return src


def load(src, dtype="float32"):
    return load_causal_lm(str(src), dtype)


def quant_state(model):
    return {f"{n}.{b}": t for n, m in model.named_modules() if isinstance(m, QuantLinear)
            for b, t in m.named_buffers(recurse=False) if t is not None}


def cached_files(tmp_path):
    return sorted((tmp_path / "cache" / "quant").glob("*.safetensors"))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("mode", ["int8", "int4", "w8a8"])
def test_second_load_maps_the_saved_codes_and_computes_the_same(saved_model, tmp_path, mode, dtype):
    # Memory-mapped codes can start anywhere in the file: the kernels' bfloat16 paths (which
    # float32 inputs take too) crashed on unaligned int8 codes before they were copied aligned.
    first = load(saved_model, dtype)
    assert quantize_cached(first, mode) == "saved"
    assert len(cached_files(tmp_path)) == 1
    second = load(saved_model, dtype)
    assert quantize_cached(second, mode) == "loaded"
    a, b = quant_state(first), quant_state(second)
    assert a.keys() == b.keys() and len(a) > 0
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert not any(isinstance(m, torch.nn.Linear) for m in second.modules())
    if mode == "w8a8":  # its attention computes rows as one-row passes do, loaded or made
        assert first.config._attn_implementation == second.config._attn_implementation \
            == "specscope_rowwise"
    ids = torch.tensor([[1, 5, 9, 2, 7]])
    torch.testing.assert_close(first(input_ids=ids).logits, second(input_ids=ids).logits,
                               rtol=0, atol=0)
    lm = CachedLM(second, check=False)
    lm.check_logits()  # our logits path still matches the model's own on the loaded layers


def test_int4_layers_come_back_as_int4_with_the_kernel_layout(saved_model):
    quantize_cached(load(saved_model), "int4")
    model = load(saved_model)
    quantize_cached(model, "int4")
    layers = [m for m in model.modules() if isinstance(m, Int4Linear)]
    assert layers and any(m.packed is not None for m in layers)


def test_the_key_follows_the_source_mode_and_dtype(saved_model, tmp_path):
    model = load(saved_model)
    key = source_key(model, "int4")
    assert key is not None and key != source_key(model, "int8")
    assert source_key(load(saved_model, "bfloat16"), "int4") != key
    weights = next(saved_model.glob("*.safetensors"))
    # rewritten weights (same name): another key
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert source_key(load(saved_model), "int4") != key


def test_stale_and_damaged_files_are_replaced_not_trusted(saved_model, tmp_path):
    quantize_cached(load(saved_model), "int4")
    (path,) = cached_files(tmp_path)
    path.write_bytes(path.read_bytes()[:100])  # a damaged file
    model = load(saved_model)
    assert quantize_cached(model, "int4") == "saved"
    assert quantize_cached(load(saved_model), "int4") == "loaded"
    weights = next(saved_model.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert quantize_cached(load(saved_model), "int4") == "saved"
    assert len(cached_files(tmp_path)) == 1  # the superseded key's file is gone


def test_runs_of_other_dtypes_and_modes_keep_each_others_files(saved_model, tmp_path):
    # float32 and bfloat16 runs of one source have keys of their own: switching between them
    # must not delete the other's codes (each switch would quantize again)
    runs = [("float32", "int8"), ("bfloat16", "int8"), ("float32", "int4")]
    for dtype, mode in runs:
        assert quantize_cached(load(saved_model, dtype), mode) == "saved"
    assert len(cached_files(tmp_path)) == len(runs)
    for dtype, mode in runs + runs[::-1]:
        assert quantize_cached(load(saved_model, dtype), mode) == "loaded", (dtype, mode)
    # a file named the way the cache named its files before keys had a family is dropped
    legacy = tmp_path / "cache" / "quant" / f"{saved_model.name}-int8-{'0' * 20}.safetensors"
    legacy.write_bytes(b"old")
    weights = next(saved_model.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert quantize_cached(load(saved_model, "float32"), "int8") == "saved"  # superseded: replaced
    assert not legacy.exists() and len(cached_files(tmp_path)) == len(runs)
    assert quantize_cached(load(saved_model, "bfloat16"), "int8") == "saved"  # its weights changed too
    assert len(cached_files(tmp_path)) == len(runs)


def test_models_without_a_local_source_quantize_in_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path / "cache"))
    model = tiny_model("draft", 0)
    assert source_key(model, "int4") is None
    assert quantize_cached(model, "int4") == "memory"
    assert any(isinstance(m, Int4Linear) for m in model.modules())
    assert not (tmp_path / "cache" / "quant").exists()


def test_one_tokenizer_serves_a_pair_only_when_their_vocabulary_files_are_identical(tmp_path):
    from specscope.core.models import same_tokenizer_files
    from specscope.core.tiny import tiny_tokenizer

    a, b = tmp_path / "a", tmp_path / "b"
    tiny_tokenizer().save_pretrained(a)
    tiny_tokenizer().save_pretrained(b)
    assert same_tokenizer_files(str(a), str(b))
    (b / "tokenizer.json").write_text((b / "tokenizer.json").read_text().replace("<|im_end|>", "<|im_stop|>"))
    assert not same_tokenizer_files(str(a), str(b))
    assert not same_tokenizer_files("tiny-random:target", "tiny-random:draft")


def test_int4_codes_packed_under_another_kernel_level_are_not_read(saved_model, monkeypatch):
    """torch's AVX-512 and AVX2 int4 kernels pack codes differently: codes written by a run
    under one (ATEN_CPU_CAPABILITY=avx2, or another CPU sharing the cache) and read under the
    other drafted garbage (every token rejected). The kernel level is part of the int4 key."""
    model = load(saved_model)
    here = source_key(model, "int4")
    int8 = source_key(model, "int8")
    real = torch.backends.cpu.get_cpu_capability()
    other = "AVX2" if real != "AVX2" else "AVX512"
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: other)
    assert source_key(model, "int4") != here
    assert source_key(model, "int8") == int8  # plain codes: the same everywhere
