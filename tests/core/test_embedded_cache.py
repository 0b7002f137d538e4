"""The embedded-model cache, on a tiny GGUF shipped the way the real pair is (sliced into part
packages): conversion in the run's dtype, the stamp's checksums, atomic placement, old float32
caches, and loading without a float32 copy."""
import hashlib
import json
import shutil
import sys

import gguf
import numpy as np
import pytest
import torch
from safetensors import safe_open

from specscope.core import embedded
from specscope.core.errors import SpecScopeError
from specscope.core.embedded import STAMP, EmbeddedModel, convert_gguf, ensure_embedded
from specscope.core.models import load_causal_lm, load_tokenizer
from tests.core.gguf_tiny import gguf_name, write_tiny_gguf

NAME = "tiny-gguf"


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored(directory) -> dict[str, torch.Tensor]:
    with safe_open(str(directory / "model.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The tiny GGUF cut into two part packages on sys.path, and the weights it came from."""
    root = tmp_path_factory.mktemp("parts")
    weights = write_tiny_gguf(root / "tiny.gguf")
    blob = (root / "tiny.gguf").read_bytes()
    cut = len(blob) // 2
    for i, piece in ((1, blob[:cut]), (2, blob[cut:])):
        package = root / f"tinyggufpart{i}"
        package.mkdir()
        (package / "part.bin").write_bytes(piece)
        (package / "__init__.py").write_text(
            f"def get_part_path():\n    return {str(package / 'part.bin')!r}\n")
    sys.path.insert(0, str(root))
    yield {"root": root, "weights": weights, "gguf": root / "tiny.gguf",
           "model": EmbeddedModel(NAME, "tinyggufpart", 2, "0", len(blob),
                                  hashlib.sha256(blob).hexdigest())}
    sys.path.remove(str(root))


@pytest.fixture
def cache(shipped, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(embedded.EMBEDDED, NAME, shipped["model"])
    return tmp_path / "cache" / "models"


def test_conversion_stores_the_asked_dtype_with_a_checksummed_stamp(shipped, tmp_path):
    gguf_copy = tmp_path / "tiny.gguf"
    shutil.copy(shipped["gguf"], gguf_copy)
    out = convert_gguf(gguf_copy, tmp_path / "out", "bfloat16", "abc123")
    assert not gguf_copy.exists()  # the GGUF is deleted once read: the disk is needed
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes == {"BF16"}
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    stamp = json.loads((out / STAMP).read_text())
    assert stamp["source_sha256"] == "abc123" and stamp["dtype"] == "bfloat16"
    written = {p.name for p in out.iterdir()} - {STAMP}
    assert set(stamp["files"]) == written and "model.safetensors" in written
    for name, meta in stamp["files"].items():
        assert meta["sha256"] == sha256(out / name)
        assert meta["size"] == (out / name).stat().st_size


def test_bf16_cache_is_the_float32_dequantisation_rounded_and_float32_is_exact(shipped, cache):
    f32 = stored(ensure_embedded(NAME, "float32"))
    bf16 = stored(ensure_embedded(NAME, "bfloat16"))
    assert set(f32) == set(bf16)
    for name in f32:
        assert f32[name].dtype == torch.float32 and bf16[name].dtype == torch.bfloat16
        assert torch.equal(f32[name].to(torch.bfloat16), bf16[name]), name
    # float32 holds the GGUF's blocks dequantised, not a bf16 rounding of them
    reader = gguf.GGUFReader(str(shipped["gguf"]))
    blocks = {t.name: t for t in reader.tensors}
    t = blocks[gguf_name("model.embed_tokens.weight")]
    exact = torch.from_numpy(gguf.quants.dequantize(t.data, t.tensor_type).copy())
    assert torch.equal(f32["model.embed_tokens.weight"], exact)
    assert not torch.equal(f32["model.embed_tokens.weight"],
                           exact.to(torch.bfloat16).to(torch.float32))


def test_each_dtype_has_its_own_directory_and_is_converted_once(shipped, cache):
    bf16 = ensure_embedded(NAME, "bfloat16")
    assert bf16 == cache / f"{NAME}-bfloat16"
    assert sorted(p.name for p in cache.iterdir()) == [f"{NAME}-bfloat16"]  # no temporary left
    stamp_time = (bf16 / STAMP).stat().st_mtime_ns
    assert ensure_embedded(NAME, "bfloat16") == bf16
    assert (bf16 / STAMP).stat().st_mtime_ns == stamp_time
    assert ensure_embedded(NAME, "float16") == cache / f"{NAME}-float32"  # f16 from f32, not bf16


def test_a_damaged_cache_is_converted_again(shipped, cache):
    bf16 = ensure_embedded(NAME, "bfloat16")
    weights = bf16 / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])  # an interrupted copy
    assert ensure_embedded(NAME, "bfloat16") == bf16
    assert weights.read_bytes() == whole


def test_an_old_float32_cache_keeps_working(shipped, cache, monkeypatch):
    old = cache / NAME  # the layout of specscope 0.1: float32, no stamp
    shutil.copytree(ensure_embedded(NAME, "float32"), old)
    (old / STAMP).unlink()
    shutil.rmtree(cache / f"{NAME}-float32")
    assert ensure_embedded(NAME, "float32") == old  # float32 runs read it as it is
    gone = EmbeddedModel(NAME, "no_such_part_package", 2, "0", shipped["model"].size,
                         shipped["model"].sha256)
    monkeypatch.setitem(embedded.EMBEDDED, NAME, gone)
    assert ensure_embedded(NAME, "bfloat16") == old  # parts uninstalled: cast from the old cache


def test_loading_in_bf16_reads_the_bf16_cache_without_a_float32_copy(shipped, cache, monkeypatch):
    from transformers import AutoModelForCausalLM

    calls = []
    original = AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, path, *args, **kwargs):
        if "gguf_file" not in kwargs:  # the loads, not the conversion
            calls.append((str(path), kwargs.get("dtype")))
        return original(cls, path, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    model = load_causal_lm(f"embedded:{NAME}", "bfloat16")
    assert calls == [(str(cache / f"{NAME}-bfloat16"), torch.bfloat16)]
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    on_disk = stored(cache / f"{NAME}-bfloat16")
    assert torch.equal(model.model.embed_tokens.weight, on_disk["model.embed_tokens.weight"])
    assert not (cache / f"{NAME}-float32").exists()
    tok = load_tokenizer(f"embedded:{NAME}", dtype="float32")  # its own cache, not the bf16 one
    assert (cache / f"{NAME}-float32").exists() and len(tok) == model.config.vocab_size


def test_a_converted_model_computes_with_the_gguf_weights(shipped, cache):
    """Every tensor lands under the right name: the converted model's logits are those of the
    source architecture given the GGUF's dequantised weights."""
    from specscope.core.tiny import tiny_model

    model = load_causal_lm(f"embedded:{NAME}", "float32")
    reader = gguf.GGUFReader(str(shipped["gguf"]))
    blocks = {t.name: t for t in reader.tensors}
    ref = tiny_model("draft")
    with torch.no_grad():
        for name in shipped["weights"]:
            t = blocks[gguf_name(name)]
            values = gguf.quants.dequantize(t.data, t.tensor_type).reshape(shipped["weights"][name].shape)
            ref.get_parameter(name).copy_(torch.from_numpy(np.ascontiguousarray(values)))
        ids = torch.tensor([[5, 17, 99, 3, 250]])
        assert torch.allclose(model(ids).logits, ref(ids).logits, atol=1e-5)


def test_the_shipped_gguf_is_assembled_once_checked_and_atomically(tmp_path, monkeypatch):
    """ensure_gguf concatenates the slices, checks size and sha256, renames into place; a
    corrupt slice leaves nothing behind."""
    data = [b"GGUF" + bytes(range(200)), bytes(range(100))]
    slices = []
    for i, chunk in enumerate(data):
        (tmp_path / f"s{i}").write_bytes(chunk)
        slices.append(tmp_path / f"s{i}")
    whole = b"".join(data)
    model = embedded.EmbeddedModel("fake-model", "nope_", 2, "0", len(whole),
                                   hashlib.sha256(whole).hexdigest())
    monkeypatch.setitem(embedded.EMBEDDED, "fake-model", model)
    monkeypatch.setattr(embedded, "part_paths", lambda m: slices)
    monkeypatch.setenv("SPECSCOPE_CACHE", str(tmp_path / "cache"))
    path = embedded.ensure_gguf("fake-model")
    assert path == embedded.gguf_path("fake-model") and path.read_bytes() == whole
    path.unlink()
    slices[1].write_bytes(bytes(100))  # same size, other bytes
    with pytest.raises(SpecScopeError, match="corrupt"):
        embedded.ensure_gguf("fake-model")
    assert not any((tmp_path / "cache" / "models").iterdir())
