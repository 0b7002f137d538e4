#!/bin/bash
cd /work/main
PY=/work/main/.venv/bin/python
O=/tmp/w8
CATS=coding,translation,summarization,qa,math_reasoning,rag
snap() { echo "== $1 $(date -u +%H:%M:%S)"; uptime; ps -eo pid,pcpu,etime,args --sort=-pcpu | head -5 | cut -c1-160; }
{
snap start
time $PY -m specscope bench -p qwen2.5-coder --backend llama.cpp -m draft -k auto \
  --reference llama.cpp --categories $CATS --limit 2 -n 48 -t 0 --no-plots --out $O/llamacpp > $O/bench_llamacpp.txt 2> $O/bench_llamacpp.err
snap end
} > $O/log2.txt 2>&1
