"""A tiny Qwen2 GGUF from the tiny-random drafter: the same file layout as the embedded pair
(2-D weights in Q8_0 blocks, norms and biases in F32), small enough to convert in a second.
Written by the one GGUF writer (core/gguf_write.py)."""
from specscope.core.gguf_write import gguf_name, write_gguf  # noqa: F401 (gguf_name re-exported)
from specscope.core.tiny import tiny_model, tiny_tokenizer


def write_tiny_gguf(path) -> dict:
    """Write the GGUF; return the float32 weights it was made from (before quantisation)."""
    model = tiny_model("draft")
    write_gguf(model, tiny_tokenizer(), path, "q8_0")
    return {name: t.float().numpy() for name, t in model.state_dict().items()
            if name != "lm_head.weight"}  # tied to the embeddings
