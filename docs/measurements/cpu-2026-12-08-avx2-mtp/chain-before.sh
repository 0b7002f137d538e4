#!/bin/bash
# AVX2-only machine: fresh default `mtp train` (30 min, fresh cache, conversion inside), continued
# +30 (60) and +30 (90) with the same command; each head evaluated on the report split; then the
# bench of the 30- and 90-minute heads (draft, mtp, mtp-tree, -k auto, report prompts). Alone.
set -u
C=/tmp/s41
PY=/work/main/.venv/bin/python
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date -u +%H:%M:%S)" "$l"; done; }
( while true; do { date -u +%H:%M:%S; uptime; ps -eo pid,pcpu,etime,args --sort=-pcpu | head -5; } >> $C/monitor.txt; sleep 60; done ) &
MON=$!
cd $C/src; export PYTHONPATH=$PWD
run() {  # $1 name: runs `mtp train` (no options) in cache $C/home$1
  export SPECSCOPE_CACHE=$C/home$1
  T0=$(date +%s.%N)
  $PY -m specscope.cli mtp train < /dev/null 2>&1 | stamp > $C/train-$1.log
  echo "rc=${PIPESTATUS[0]}" >> $C/train-$1.log
  echo "$1 wall_s $(echo "$(date +%s.%N) - $T0" | bc)" >> $C/walls.txt
}
echo "H30 start $(date -u)" >> $C/chain.txt
rm -rf $C/homeH30; mkdir -p $C/homeH30; run H30
for p in "H30 H60" "H60 H90"; do set -- $p
  rm -rf $C/home$2; mkdir -p $C/home$2; cp -a $C/home$1/machine $C/home$1/mtp $C/home$2/; ln -s $C/homeH30/models $C/home$2/models
  [ -d $C/homeH30/quant ] && ln -s $C/homeH30/quant $C/home$2/quant
  echo "$2 start $(date -u)" >> $C/chain.txt; run $2
done
mkdir -p $C/evalcache; ln -sfn $C/homeH30/models $C/evalcache/models; cp -a $C/homeH30/machine $C/evalcache/ 2>/dev/null
export SPECSCOPE_CACHE=$C/evalcache
for n in H30 H60 H90; do
  $PY -m specscope.cli mtp eval --head $C/home$n/mtp/qwen2.5-coder.safetensors --json < /dev/null > $C/evalR-$n.json 2> >(stamp > $C/evalR-$n.err)
  echo "evalR $n rc=$? $(date -u)" >> $C/chain.txt
done
for n in H30 H90; do
  D=$C/bench-$n; rm -rf $D; mkdir -p $D/mtp; ln -s $C/homeH30/models $D/models
  [ -d $C/homeH30/quant ] && ln -s $C/homeH30/quant $D/quant
  cp -a $C/homeH30/machine $D/machine; cp $C/home$n/mtp/qwen2.5-coder.safetensors $D/mtp/qwen2.5-coder.safetensors
  export SPECSCOPE_CACHE=$D
  $PY -m specscope.cli bench -p qwen2.5-coder -m draft,mtp,mtp-tree -k auto --limit 2 \
    --categories coding,math_reasoning,writing -n 48 --backend torch \
    --out $C/benchout-$n < /dev/null 2>&1 | stamp > $C/bench-$n.log
  echo "bench $n rc=${PIPESTATUS[0]} $(date -u)" >> $C/chain.txt
done
kill $MON
echo done > $C/chain.done
