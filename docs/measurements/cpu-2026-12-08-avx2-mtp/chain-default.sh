#!/bin/bash
# AVX2-only machine, commit in /tmp/s41/src: fresh default `mtp train` (30 min, fresh cache,
# conversion and machine probe inside), its head evaluated on the report split, then the bench
# (draft, mtp, mtp-tree, -k auto, report prompts, profile defaults). Alone.
set -u
C=/tmp/s41
PY=/work/main/.venv/bin/python
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date -u +%H:%M:%S)" "$l"; done; }
( while true; do { date -u +%H:%M:%S; uptime; ps -eo pid,pcpu,etime,args --sort=-pcpu | head -5; } >> $C/monitor2.txt; sleep 60; done ) &
MON=$!
cd $C/src; export PYTHONPATH=$PWD
export SPECSCOPE_CACHE=$C/homeF
rm -rf $C/homeF; mkdir -p $C/homeF
echo "F start $(date -u)" >> $C/chain2.txt
T0=$(date +%s.%N)
$PY -m specscope.cli mtp train < /dev/null 2>&1 | stamp > $C/train-F.log
echo "rc=${PIPESTATUS[0]}" >> $C/train-F.log
echo "F wall_s $(echo "$(date +%s.%N) - $T0" | bc)" >> $C/walls.txt
echo "F done $(date -u)" >> $C/chain2.txt
$PY -m specscope.cli mtp eval --json < /dev/null > $C/evalR-F.json 2> >(stamp > $C/evalR-F.err)
echo "evalR F rc=$? $(date -u)" >> $C/chain2.txt
$PY -m specscope.cli bench -p qwen2.5-coder -m draft,mtp,mtp-tree -k auto --limit 2 \
  --categories coding,math_reasoning,writing -n 48 --out $C/benchout-F < /dev/null 2>&1 | stamp > $C/bench-F.log
echo "bench F rc=${PIPESTATUS[0]} $(date -u)" >> $C/chain2.txt
kill $MON
echo done > $C/chain2.done
