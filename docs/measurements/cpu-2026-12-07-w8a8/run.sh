#!/bin/bash
cd /work/main
PY=/work/main/.venv/bin/python
O=/tmp/w8
CATS=coding,translation,summarization,qa,math_reasoning,rag
snap() { echo "== $1 $(date -u +%H:%M:%S)"; uptime; ps -eo pid,pcpu,etime,args --sort=-pcpu | head -5 | cut -c1-160; }
{
snap start
time $PY -m specscope bench -p qwen2.5-coder --backend torch --dtype float32 --quant w8a8 --draft-quant int4 -m draft,tree -k auto \
  --reference llama.cpp --categories $CATS --limit 2 -n 48 -t 0 --no-plots --out $O/w8a8 > $O/bench_w8a8.txt 2> $O/bench_w8a8.err
snap end
} > $O/log.txt 2>&1
