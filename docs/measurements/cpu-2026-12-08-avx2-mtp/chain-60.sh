#!/bin/bash
# after chain2: the fresh head continued with the same command (+30 min: the 60-minute head), evaluated on the report split
set -u
C=/tmp/s41
PY=/work/main/.venv/bin/python
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date -u +%H:%M:%S)" "$l"; done; }
until [ -f $C/chain2.done ]; do sleep 5; done
( while true; do { date -u +%H:%M:%S; uptime; ps -eo pid,pcpu,etime,args --sort=-pcpu | head -5; } >> $C/monitor3.txt; sleep 60; done ) &
MON=$!
cd $C/src; export PYTHONPATH=$PWD
rm -rf $C/homeF60; mkdir -p $C/homeF60; cp -a $C/homeF/machine $C/homeF/mtp $C/homeF60/; ln -s $C/homeF/models $C/homeF60/models
[ -d $C/homeF/quant ] && ln -s $C/homeF/quant $C/homeF60/quant
# the report answers the first eval made, so this eval reads the same answers
[ -d $C/homeF/eval ] && cp -a $C/homeF/eval $C/homeF60/
export SPECSCOPE_CACHE=$C/homeF60
echo "F60 start $(date -u)" >> $C/chain3.txt
T0=$(date +%s.%N)
$PY -m specscope.cli mtp train < /dev/null 2>&1 | stamp > $C/train-F60.log
echo "rc=${PIPESTATUS[0]}" >> $C/train-F60.log
echo "F60 wall_s $(echo "$(date +%s.%N) - $T0" | bc)" >> $C/walls.txt
$PY -m specscope.cli mtp eval --json < /dev/null > $C/evalR-F60.json 2> >(stamp > $C/evalR-F60.err)
echo "evalR F60 rc=$? $(date -u)" >> $C/chain3.txt
kill $MON
echo done > $C/chain3.done
