import json, os, re
C = "/tmp/curve"
def load(p):
    try: return json.load(open(p))
    except Exception as e: return None
print("== budget curve: report split, 2 a category (26 prompts), 128-token answers")
for n in ("c10", "c20", "c30", "c60", "c90"):
    e = load(f"{C}/eval-{n}.json")
    if not e: print(n, "missing"); continue
    o, t = e["overall"], e["trained"]
    print(f"{n}: acceptance {' '.join(f'{a:.3f}' for a in o['acceptance'])}  in_rows {o['in_rows']:.3f}  "
          f"tokens {o['answer_tokens']}  trained {t['seconds']:.0f}s steps {t['steps']} n_train {t['n_train']} samples {t['samples']} own_est {[round(x,3) for x in t['estimate_acceptance']]}")
    print("   per cat step1:", {c: round(r['acceptance'][0], 2) for c, r in e["categories"].items()})
print("== script rows")
for split in ("tuning", "report"):
    for m in (0, 1024, 4096):
        e = load(f"{C}/ml-{split}-{m}.json")
        if not e: print(split, m, "missing"); continue
        o = e["overall"]
        print(f"ml {split} M={m}: {' '.join(f'{a:.3f}' for a in o['acceptance'])} in_rows {o['in_rows']:.3f}  " +
              "  ".join(f"{c}:{r['acceptance'][0]:.2f}/{r['in_rows']:.2f}" for c, r in e["categories"].items()))
for m in (0, 1024, 4096):
    e = load(f"{C}/tr-report-{m}.json")
    if e: print(f"translation report M={m}: {e['overall']['acceptance']} in_rows {e['overall']['in_rows']}")
