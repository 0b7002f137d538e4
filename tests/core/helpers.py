"""Small builders for core tests: decoders over tiny seeded models with any vocabulary size."""
from specscope.core.drafters.base import NoDrafter
from specscope.core.drafters.model import ModelDrafter
from specscope.core.engine import SpecDecoder
from specscope.core.lm import CachedLM
from specscope.core.tiny import tiny_model


class IdTokenizer:
    """A tokenizer stand-in for tiny vocabularies: token i is the text ' i'."""

    def decode(self, ids, **_):
        return "".join(f" {i}" for i in ids)


def tiny_decoder(vocab_size=1024, seed=0, eos_ids=(), tokenizer=None, extra=None, **model_kw):
    target = CachedLM(tiny_model("target", seed, vocab_size, **model_kw))
    draft = CachedLM(tiny_model("draft", seed, vocab_size, **model_kw))
    factories = {"ar": NoDrafter, "draft": lambda: ModelDrafter(draft, target.vocab_size)}
    factories.update(extra(target, draft) if extra else {})
    return SpecDecoder(target, tokenizer or IdTokenizer(), factories, set(eos_ids))


def run(decoder, prompt, **controls):
    from specscope.core.controls import Controls

    events = list(decoder.run(prompt, Controls(**controls)))
    return events, events[-1].summary


def model_greedy(model, prompt, n):
    """The model's own greedy continuation: plain model(...) calls, no cache, no specscope."""
    import torch

    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt):]
