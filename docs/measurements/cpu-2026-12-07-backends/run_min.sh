#!/bin/bash
# Reduced run (the lock came late): llama.cpp ar/draft/tree on 6 categories x 2; torch float32 ar/draft on x 1.
cd /work/wt/llamacpp
export PYTHONPATH=$PWD
PY=/work/main/.venv/bin/python
O=/tmp/measure_llamacpp
CATS=coding,translation,summarization,qa,math_reasoning,rag
snap() { echo "== $1 $(date -u +%H:%M:%S)"; uptime; ps -eo pid,pcpu,etime,args --sort=-pcpu | head -6 | cut -c1-160; }
{
snap start
time $PY -m specscope bench -p qwen2.5-coder --backend llama.cpp -m draft,tree -k auto \
  --categories $CATS --limit 2 -n 48 -t 0 --no-plots --out $O/llamacpp > $O/bench_llamacpp.txt 2> $O/bench_llamacpp.err
snap after-llamacpp
time $PY -m specscope bench -p qwen2.5-coder --backend torch --dtype float32 --draft-quant none -m draft -k auto \
  --categories $CATS --limit 1 -n 48 -t 0 --no-plots --out $O/torch_f32 > $O/bench_torch.txt 2> $O/bench_torch.err
snap end
} > $O/log.txt 2>&1
