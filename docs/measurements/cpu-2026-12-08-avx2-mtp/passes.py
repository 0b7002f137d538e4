# direct pass timings of the target, float32 and bfloat16, KV cache of 200 tokens, this machine
import time, torch, sys
from transformers import AutoModelForCausalLM, DynamicCache
torch.set_num_threads(2)
path = "/tmp/s41/homeH30/models/qwen2.5-coder-1.5b-instruct-bfloat16"
for dt in (torch.float32, torch.bfloat16):
    m = AutoModelForCausalLM.from_pretrained(path, dtype=dt).eval()
    ids = torch.randint(100, 20000, (1, 200))
    with torch.inference_mode():
        t = time.perf_counter(); out = m(ids, use_cache=True); pre = time.perf_counter() - t
        res = {}
        for rows in (1, 1, 2, 4, 8, 16):
            best = 1e9
            for _ in range(3):
                cache = out.past_key_values
                x = torch.randint(100, 20000, (1, rows))
                t = time.perf_counter(); m(x, cache=cache, use_cache=True); best = min(best, time.perf_counter() - t)
                cache.crop(-rows)
            res[rows] = round(best, 3)
        bx = torch.randint(100, 20000, (16, 1))
    print(dt, "prefill 200 tok/s", round(200 / pre, 1), "passes", res, flush=True)
    del m
