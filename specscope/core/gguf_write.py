"""Write a Qwen2 causal LM and its byte-level BPE tokenizer as a GGUF file llama.cpp can load.

Used by the tests of the llama.cpp backends (the binding and llama-server): they need a real
GGUF model without a download, so they write the `tiny-random` pair (core/tiny.py) with this,
and the torch and llama.cpp backends then run the very same weights. Weights are stored as
float32 (or float16, or Q8_0 blocks as the embedded pair's are), so llama.cpp's p is the torch model's p up to rounding.

Only what a Qwen2 model with a GPT-2-style byte-level BPE tokenizer needs is written; any other
architecture is refused. Names follow llama.cpp's tensor map for `qwen2` (no q/k permutation:
Qwen2 uses the NEOX rotary layout in both). The file is built under a temporary name and
renamed into place.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from specscope.core.errors import SpecScopeError

# HF Qwen2 parameter names -> llama.cpp's GGUF tensor names ({i}: the layer)
LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
WEIGHT_TYPES = ("float32", "float16", "q8_0")  # of 2-D weights; norms and biases stay float32


TOP = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
       "lm_head.weight": "output.weight"}


def gguf_name(hf_name: str) -> str:
    """The GGUF tensor name of a Qwen2 parameter (`model.layers.3.mlp.up_proj.weight` ->
    `blk.3.ffn_up.weight`)."""
    if hf_name in TOP:
        return TOP[hf_name]
    _, _, i, rest = hf_name.split(".", 3)
    return f"blk.{i}.{LAYER_TENSORS[rest]}"


def _tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """{GGUF name: float32 tensor}; a head tied to the embeddings is not written (llama.cpp
    reads token_embd for it)."""
    tied = model.config.tie_word_embeddings
    return {gguf_name(k): v.detach().float().cpu() for k, v in model.state_dict().items()
            if not (tied and k == "lm_head.weight")}


def _tokenizer_fields(writer, tokenizer) -> None:
    import gguf

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "BPE":
        raise SpecScopeError("only byte-level BPE tokenizers can be written as GGUF here")
    vocab = tokenizer.get_vocab()
    size = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    for text, i in vocab.items():
        tokens[i] = text
        types[i] = gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # the GPT-2 split ByteLevel uses (llama.cpp's name for it)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for name, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                      ("pad_token_id", writer.add_pad_token_id)):
        value = getattr(tokenizer, name, None)
        if value is not None:
            add(int(value))
    writer.add_add_bos_token(False)
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)


def write_gguf(model: torch.nn.Module, tokenizer, path: str | os.PathLike, dtype: str = "float32") -> Path:
    """Write model (a Qwen2ForCausalLM) and tokenizer to `path` as GGUF; returns the path."""
    import gguf

    config = model.config
    if getattr(config, "model_type", None) != "qwen2":
        raise SpecScopeError(f"writing GGUF supports Qwen2 models, not '{config.model_type}'")
    if dtype not in WEIGHT_TYPES:
        raise SpecScopeError(f"GGUF weights as {', '.join(WEIGHT_TYPES)}, not {dtype}")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), "qwen2")
    writer.add_name(getattr(config, "name_or_path", "") or "specscope-qwen2")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", None)
                                    or config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_file_type({"float32": gguf.LlamaFileType.ALL_F32, "float16": gguf.LlamaFileType.MOSTLY_F16,
                          "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype])
    _tokenizer_fields(writer, tokenizer)
    for name, t in _tensors(model).items():
        a = t.numpy()
        if a.ndim == 1 or dtype == "float32":
            writer.add_tensor(name, a)
        elif dtype == "float16":
            writer.add_tensor(name, a.astype(np.float16))
        else:
            q = gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)
    return path


def write_tiny_gguf(path: str | os.PathLike, role: str = "target", seed: int = 0,
                    dtype: str = "float32") -> Path:
    """The `tiny-random:ROLE` model (core/tiny.py) with its tokenizer, as GGUF at `path`."""
    from specscope.core.tiny import tiny_model, tiny_tokenizer

    return write_gguf(tiny_model(role, seed), tiny_tokenizer(), path, dtype)
