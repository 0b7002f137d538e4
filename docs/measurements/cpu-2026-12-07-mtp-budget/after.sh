#!/bin/bash
# after the chain: fresh 10 and 20 min heads again (the first ones ran beside my tests), then
# every head evaluated on the same report prompts, the language-aware rows, and two benches
set -u
C=/tmp/curve
PY=/work/main/.venv/bin/python
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date -u +%H:%M:%S)" "$l"; done; }
until [ -f $C/chain.done ]; do sleep 10; done
( while true; do { date -u +%H:%M:%S; uptime; ps -eo pid,pcpu,etime,args --sort=-pcpu | head -5; } >> $C/monitor2.txt; sleep 60; done ) &
MON=$!
cd $C/src; export PYTHONPATH=$PWD
fresh() { rm -rf $C/$1; mkdir -p $C/$1; ln -s /root/.cache/specscope/models $C/$1/models; ln -s /root/.cache/specscope/quant $C/$1/quant; }
run() {
  export SPECSCOPE_CACHE=$C/$1
  T0=$(date +%s.%N)
  $PY -m specscope.cli mtp train --minutes $2 < /dev/null 2>&1 | stamp > $C/$1.log
  echo "rc=${PIPESTATUS[0]}" >> $C/$1.log
  echo "$1 wall_s $(echo "$(date +%s.%N) - $T0" | bc)" >> $C/walls.txt
}
fresh c10; run c10 10
fresh c20; run c20 20
echo "trainings done $(date -u)" >> $C/after.txt
until [ -f $C/src2/READY ]; do sleep 10; done
cd $C/src2; export PYTHONPATH=$PWD
export SPECSCOPE_CACHE=$C/evalcache
mkdir -p $SPECSCOPE_CACHE; ln -sfn /root/.cache/specscope/models $SPECSCOPE_CACHE/models; ln -sfn /root/.cache/specscope/quant $SPECSCOPE_CACHE/quant
declare -A H=([c10]=$C/c10/mtp/qwen2.5-coder.safetensors [c20]=$C/c20/mtp/qwen2.5-coder.safetensors [c30]=/tmp/measure_mtp/cache/mtp/qwen2.5-coder.safetensors [c60]=$C/c60/mtp/qwen2.5-coder.safetensors [c90]=$C/c90/mtp/qwen2.5-coder.safetensors)
for n in c30 c90 c60 c20 c10; do
  $PY -m specscope.cli mtp eval --head ${H[$n]} --json < /dev/null > $C/eval-$n.json 2> >(stamp > $C/eval-$n.err)
  echo "eval $n rc=$? $(date -u)" >> $C/after.txt
done
# language-aware rows: chosen on the multilingual tuning prompts, reported on its report prompts
for m in 0 1024 4096; do
  $PY -m specscope.cli mtp eval --head ${H[c30]} --prompts multilingual --split tuning --limit 0 --script-rows $m --json < /dev/null > $C/ml-tuning-$m.json 2> >(stamp > $C/ml-tuning-$m.err)
  echo "ml tuning $m rc=$? $(date -u)" >> $C/after.txt
done
for m in 0 1024 4096; do
  $PY -m specscope.cli mtp eval --head ${H[c30]} --prompts multilingual --split report --limit 0 --script-rows $m --json < /dev/null > $C/ml-report-$m.json 2> >(stamp > $C/ml-report-$m.err)
  $PY -m specscope.cli mtp eval --head ${H[c30]} --categories translation --limit 4 --script-rows $m --json < /dev/null > $C/tr-report-$m.json 2> >(stamp > $C/tr-report-$m.err)
  echo "ml report $m rc=$? $(date -u)" >> $C/after.txt
done
# benches: the default (30 min) head and the 90 min head, same settings, same machine cache
for n in c30 c90; do
  B=$C/bench-$n; rm -rf $B; mkdir -p $B/mtp; ln -s /root/.cache/specscope/models $B/models; ln -s /root/.cache/specscope/quant $B/quant
  cp -a /root/.cache/specscope/machine $B/machine; cp ${H[$n]} $B/mtp/qwen2.5-coder.safetensors
  export SPECSCOPE_CACHE=$B
  $PY -m specscope.cli bench -p qwen2.5-coder -m draft,mtp,mtp-tree -k auto --limit 2 \
    --categories coding,math_reasoning,writing -n 48 --dtype bfloat16 --draft-quant int4 --backend torch \
    --out $C/benchout-$n < /dev/null 2>&1 | stamp > $C/bench-$n.log
  echo "bench $n rc=${PIPESTATUS[0]} $(date -u)" >> $C/after.txt
done
kill $MON
echo done > $C/after.done
