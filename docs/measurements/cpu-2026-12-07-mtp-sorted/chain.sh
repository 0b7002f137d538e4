#!/bin/bash
# after run B: A and B evaluated (tuning: the choice; report), B continued +30 (60) and +30 (90),
# those evaluated on report, then the bench of the B (30 min) and B90 heads
set -u
C=/tmp/s40
PY=/work/main/.venv/bin/python
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date -u +%H:%M:%S)" "$l"; done; }
until [ -f $C/B.done ]; do sleep 10; done
( while true; do { date -u +%H:%M:%S; uptime; ps -eo pid,pcpu,etime,args --sort=-pcpu | head -5; } >> $C/monitorC.txt; sleep 60; done ) &
MON=$!
cd $C/srcB; export PYTHONPATH=$PWD
H_A=$C/homeA/mtp/qwen2.5-coder.safetensors
H_B=$C/homeB/mtp/qwen2.5-coder.safetensors
$PY $C/tuning_file.py $H_A $H_B $C/tuning.jsonl >> $C/chain.txt 2>&1
export SPECSCOPE_CACHE=/tmp/curve/evalcache
for n in A B; do
  eval H=\$H_$n
  $PY -m specscope.cli mtp eval --head $H --prompts $C/tuning.jsonl --limit 0 --json < /dev/null > $C/evalT-$n.json 2> >(stamp > $C/evalT-$n.err)
  echo "evalT $n rc=$? $(date -u)" >> $C/chain.txt
  $PY -m specscope.cli mtp eval --head $H --json < /dev/null > $C/evalR-$n.json 2> >(stamp > $C/evalR-$n.err)
  echo "evalR $n rc=$? $(date -u)" >> $C/chain.txt
done
run() {  # $1 name (continues the head in its cache) 
  export SPECSCOPE_CACHE=$C/home$1
  T0=$(date +%s.%N)
  $PY -m specscope.cli mtp train --minutes 30 < /dev/null 2>&1 | stamp > $C/$1.log
  echo "rc=${PIPESTATUS[0]}" >> $C/$1.log
  echo "$1 wall_s $(echo "$(date +%s.%N) - $T0" | bc)" >> $C/walls.txt
}
echo "waiting for go60 $(date -u)" >> $C/chain.txt
until [ -f $C/go60 ]; do sleep 5; done
echo "go60 $(date -u)" >> $C/chain.txt
rm -rf $C/homeB60; mkdir -p $C/homeB60; cp -a $C/homeB/machine $C/homeB/mtp $C/homeB60/; ln -s $C/homeB/models $C/homeB60/models; run B60
rm -rf $C/homeB90; mkdir -p $C/homeB90; cp -a $C/homeB60/machine $C/homeB60/mtp $C/homeB90/; ln -s $C/homeB/models $C/homeB90/models; run B90
export SPECSCOPE_CACHE=/tmp/curve/evalcache
for n in B60 B90; do
  $PY -m specscope.cli mtp eval --head $C/home$n/mtp/qwen2.5-coder.safetensors --json < /dev/null > $C/evalR-$n.json 2> >(stamp > $C/evalR-$n.err)
  echo "evalR $n rc=$? $(date -u)" >> $C/chain.txt
done
for n in B B90; do
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
