#!/bin/bash
# B continued +30 min (the 60-minute head), evaluated on report; then the bench of the B (default, 30 min) head
set -u
C=/tmp/s40
PY=/work/main/.venv/bin/python
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date -u +%H:%M:%S)" "$l"; done; }
( while true; do { date -u +%H:%M:%S; uptime; ps -eo pid,pcpu,etime,args --sort=-pcpu | head -5; } >> $C/monitorC.txt; sleep 60; done ) &
MON=$!
cd $C/srcB; export PYTHONPATH=$PWD
echo "B60 start $(date -u)" >> $C/chain.txt
rm -rf $C/homeB60; mkdir -p $C/homeB60; cp -a $C/homeB/machine $C/homeB/mtp $C/homeB60/; ln -s $C/homeB/models $C/homeB60/models
export SPECSCOPE_CACHE=$C/homeB60
T0=$(date +%s.%N)
$PY -m specscope.cli mtp train --minutes 30 < /dev/null 2>&1 | stamp > $C/B60.log
echo "rc=${PIPESTATUS[0]}" >> $C/B60.log
echo "B60 wall_s $(echo "$(date +%s.%N) - $T0" | bc)" >> $C/walls.txt
export SPECSCOPE_CACHE=/tmp/curve/evalcache
$PY -m specscope.cli mtp eval --head $C/homeB60/mtp/qwen2.5-coder.safetensors --json < /dev/null > $C/evalR-B60.json 2> >(stamp > $C/evalR-B60.err)
echo "evalR B60 rc=$? $(date -u)" >> $C/chain.txt
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
echo done > $C/chain.done
