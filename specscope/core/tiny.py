"""The `tiny-random` pair: small seeded Qwen2 models and a byte-level BPE tokenizer, no download.

The drafter shares the target's embeddings, first layer, final norm and head, so its guesses
correlate with the target's (some accepted, some rejected), like a real draft model's would.
"""
from __future__ import annotations

from pathlib import Path

import torch

LATER_LAYER_SCALE = 0.08
CORPUS = Path(__file__).resolve().parent.parent / "data" / "tiny_corpus.txt"
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer(vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS.read_text().split("\n"), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", bos_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_config(role: str, vocab_size: int = 1024, layers: int | None = None, init: float = 0.5):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers if layers is not None else (4 if role == "target" else 1),
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=2,
        bos_token_id=0,
        pad_token_id=0,
        initializer_range=init,  # 0.5: peaky distributions, so greedy has clear winners
    )


def tiny_model(role: str, seed: int = 0, vocab_size: int = 1024, init: float = 0.5,
               later_scale: float = LATER_LAYER_SCALE):
    """role: 'target' (4 layers) or 'draft' (1 layer, sharing the target's first layer)."""
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(seed)
    target = Qwen2ForCausalLM(tiny_config("target", vocab_size, init=init)).eval()
    with torch.no_grad():  # quiet later layers: the 1-layer drafter then agrees often, not always
        for layer in target.model.layers[1:]:
            layer.self_attn.o_proj.weight.mul_(later_scale)
            layer.mlp.down_proj.weight.mul_(later_scale)
    if role == "target":
        return target
    draft = Qwen2ForCausalLM(tiny_config("draft", vocab_size, init=init)).eval()
    own = draft.state_dict()
    shared = {k: v for k, v in target.state_dict().items() if k in own}
    draft.load_state_dict(shared)
    return draft
