"""The GGUF writer: a written tiny model loads back (through transformers' GGUF reader) with the
same logits, its tokenizer fields are the tokenizer's, and other architectures are refused."""
import gguf
import pytest
import torch

from specscope.core.errors import SpecScopeError
from specscope.core.gguf_write import write_gguf, write_tiny_gguf
from specscope.core.tiny import tiny_model, tiny_tokenizer


@pytest.mark.parametrize("dtype,tol", [("float32", 0.0), ("float16", 5e-2)])
def test_written_model_loads_back_with_the_same_logits(tmp_path, dtype, tol):
    from transformers import AutoModelForCausalLM

    path = write_tiny_gguf(tmp_path / "t.gguf", "target", dtype=dtype)
    assert not list(tmp_path.glob("*.tmp"))
    back = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=path.name,
                                                dtype=torch.float32).eval()
    ids = torch.tensor([[5, 17, 300, 2, 9, 44, 1000]])
    with torch.no_grad():
        ours, theirs = tiny_model("target")(ids).logits, back(ids).logits
    assert (ours - theirs).abs().max().item() <= tol


def test_tokenizer_fields(tmp_path):
    tok = tiny_tokenizer()
    reader = gguf.GGUFReader(write_tiny_gguf(tmp_path / "d.gguf", "draft"))
    field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode() for i in field.data]
    assert tokens == tok.convert_ids_to_tokens(list(range(len(tok))))
    eos = reader.fields["tokenizer.ggml.eos_token_id"]
    assert int(eos.parts[eos.data[0]][0]) == tok.eos_token_id
    assert len(reader.fields["tokenizer.ggml.merges"].data) > 0


def test_other_architectures_are_refused(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2))
    with pytest.raises(SpecScopeError, match="Qwen2"):
        write_gguf(model, tiny_tokenizer(), tmp_path / "x.gguf")
    assert not list(tmp_path.iterdir())
