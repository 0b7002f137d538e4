"""Decode step time and prompt-read time of the target's batched answers (core/greedy.py) at
batch 16, 24 and 32, on prompts of about 200 tokens (bf16, the embedded pair)."""
import time, sys, json
import torch
from specscope.core.models import load_causal_lm, load_tokenizer, eos_ids
from specscope.core.greedy import generate_answers
from specscope.profiles import load_profile
prof = load_profile("qwen2.5-coder")
tok = load_tokenizer(prof.target); model = load_causal_lm(prof.target, "bfloat16", "cpu")
text = open("/work/main/README.md").read()
ids = tok(text)["input_ids"]
res = {}
for b in (16, 24, 32):
    prompts = [ids[i * 50: i * 50 + 200] for i in range(b)]
    stamps = []
    t0 = time.perf_counter()
    generate_answers(model, prompts, 40, set(), tok.pad_token_id or 0, on_step=lambda n: stamps.append(time.perf_counter()))
    first = stamps[0] - t0
    step = (stamps[-1] - stamps[5]) / (len(stamps) - 6)
    res[b] = {"prefill_s": round(first, 2), "prefill_tps": round(b * 200 / first, 1), "step_s": round(step, 3), "decode_tps": round(b / step, 1)}
    print(b, res[b], flush=True)
json.dump(res, open("/tmp/s40/batchbench.json", "w"))
