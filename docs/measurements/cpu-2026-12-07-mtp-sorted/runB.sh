#!/bin/bash
# fresh default `mtp train` (30 min), a fresh cache (no converted weights either), alone
set -u
C=/tmp/s40
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date -u +%H:%M:%S)" "$l"; done; }
( while true; do { date -u +%H:%M:%S; uptime; ps -eo pid,pcpu,etime,args --sort=-pcpu | head -5; } >> $C/monitorB.txt; sleep 60; done ) &
MON=$!
cd $C/srcB; export PYTHONPATH=$PWD
rm -rf $C/homeB; mkdir -p $C/homeB
export SPECSCOPE_CACHE=$C/homeB
T0=$(date +%s.%N)
/work/main/.venv/bin/python -m specscope.cli mtp train < /dev/null 2>&1 | stamp > $C/B.log
echo "rc=${PIPESTATUS[0]}" >> $C/B.log
echo "B wall_s $(echo "$(date +%s.%N) - $T0" | bc)" >> $C/walls.txt
kill $MON
echo done > $C/B.done
