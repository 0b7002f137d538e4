#!/bin/bash
set -u
C=/tmp/s40
PY=/work/main/.venv/bin/python
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date -u +%H:%M:%S)" "$l"; done; }
( while true; do { date -u +%H:%M:%S; uptime; ps -eo pid,pcpu,etime,args --sort=-pcpu | head -5; } >> $C/monitorD.txt; sleep 60; done ) &
MON=$!
cd $C/srcB; export PYTHONPATH=$PWD
for n in B; do
  D=$C/bench-$n; rm -rf $D; mkdir -p $D/mtp; ln -s /root/.cache/specscope/models $D/models; ln -s /root/.cache/specscope/quant $D/quant
  cp -a /root/.cache/specscope/machine $D/machine; cp $C/home$n/mtp/qwen2.5-coder.safetensors $D/mtp/qwen2.5-coder.safetensors
  export SPECSCOPE_CACHE=$D
  $PY -m specscope.cli bench -p qwen2.5-coder -m draft,mtp,mtp-tree -k auto --limit 2 \
    --categories coding,math_reasoning,writing -n 48 --dtype bfloat16 --draft-quant int4 --backend torch \
    --out $C/benchout-$n < /dev/null 2>&1 | stamp > $C/bench-$n.log
  echo "bench $n rc=${PIPESTATUS[0]} $(date -u)" >> $C/chain.txt
done
kill $MON
echo done > $C/bench.done
