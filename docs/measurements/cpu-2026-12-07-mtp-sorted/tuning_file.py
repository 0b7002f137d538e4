"""The packaged tuning split minus every prompt any of the given heads was trained or selected on
(bench/overlap.read_used): the prompts on which heads are compared for a choice."""
import json, sys
from pathlib import Path
from specscope.bench.overlap import read_used
from specscope.prompts import read_prompts, prompt_source
heads, out = sys.argv[1:-1], sys.argv[-1]
used = set()
for h in heads:
    used |= set(read_used(Path(h))["digests"])
src = prompt_source(None)
keep = [p for p in read_prompts(src) if p.split == "tuning" and p.digest not in used]
lines = [json.loads(l) for l in open(src)]
byid = {str(l["question_id"]): l for l in lines}
with open(out, "w") as f:
    for p in keep:
        row = dict(byid[str(p.id)]); row.pop("split", None)
        f.write(json.dumps(row) + "\n")
print(len(keep), "tuning prompts kept of", sum(p.split == "tuning" for p in read_prompts(src)))
