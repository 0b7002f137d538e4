"""Pass costs and fidelity of the embedded target in several formats (torch, CPU)."""
import json, sys, time, torch
torch.set_num_threads(2)
from specscope.core.models import load_causal_lm, load_tokenizer
from specscope.core.lm import CachedLM
from specscope.core.machine import measure_lm
from specscope.core.greedy import generate_answers
from specscope.prompts import read_prompts, default_prompt_file
T = "embedded:qwen2.5-coder-1.5b-instruct"
tok = load_tokenizer(T)
ps = [p for p in read_prompts(default_prompt_file()) if p.split == "tuning"]
seen, pick = set(), []
for p in ps:
    if p.category not in seen:
        seen.add(p.category); pick.append(p)
pick = pick[:int(sys.argv[1]) if len(sys.argv) > 1 else 6]
prompts = [tok.apply_chat_template([{"role": "user", "content": p.text}], add_generation_prompt=True) for p in pick]
prompts = [list(x["input_ids"]) if hasattr(x, "keys") else list(x) for x in prompts]
eos = {tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id}
def log(*a): print(*a, flush=True)
ref_model = load_causal_lm(T, "float32", "cpu")
t = time.time()
answers = [generate_answers(ref_model, [p], 64, eos, tok.pad_token_id or 0)[0] for p in prompts]
log("answers", [len(a) for a in answers], round(time.time() - t), "s")
def rows(lm, p, a):
    lm.reset()
    h = lm.forward(p + a, n_last=len(a) + 1)
    return lm.logits(h).float()[:-1]
ref = [rows(CachedLM(ref_model, check=False), p, a) for p, a in zip(prompts, answers)]
del ref_model
results = {}
for dtype, quant in (("float32", "none"), ("bfloat16", "none"), ("float32", "int8"), ("bfloat16", "int8"),
                     ("float32", "w8a8"), ("bfloat16", "w8a8")):
    m = load_causal_lm(T, dtype, "cpu")
    lm = CachedLM(m, check=False)
    lm.quantize(quant)
    agree = n = 0; kl = 0.0
    for p, a, r in zip(prompts, answers, ref):
        x = rows(lm, p, a)
        agree += int((x.argmax(-1) == r.argmax(-1)).sum()); n += len(a)
        kl += float(torch.nn.functional.kl_div(x.log_softmax(-1), r.log_softmax(-1), log_target=True, reduction="sum"))
    c = measure_lm(lm, reps=5)
    one = c.passes[1]
    curve = {k: round(v / one, 2) for k, v in sorted(c.passes.items())}
    results[f"{dtype}/{quant}"] = dict(top1=round(agree / n, 4), kl=round(kl / n, 5), pass1_ms=round(one * 1e3, 1),
                                       curve=curve, prefill_tok_s=round(c.prefill_tps, 1))
    log(f"{dtype}/{quant}", results[f"{dtype}/{quant}"])
    del lm, m
json.dump(results, open("/tmp/w8a8_eval.json", "w"), indent=1)
D = "embedded:qwen2.5-coder-0.5b-instruct"
for dtype in ("float32", "bfloat16"):
    for quant in ("none", "int8", "int4", "w8a8"):
        m = load_causal_lm(D, dtype, "cpu")
        lm = CachedLM(m, check=False)
        lm.quantize(quant)
        c = measure_lm(lm, rows=(1, 2), reps=7)
        results[f"drafter {dtype}/{quant}"] = dict(token_ms=round(c.passes[1] * 1e3, 1))
        log(f"drafter {dtype}/{quant}", results[f"drafter {dtype}/{quant}"])
        del lm, m
json.dump(results, open("/tmp/w8a8_eval.json", "w"), indent=1)
