#!/bin/bash
# fresh default `mtp train` (30 min), a fresh cache (no converted weights either), alone
set -u
C=/tmp/s40
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date -u +%H:%M:%S)" "$l"; done; }
( while true; do { date -u +%H:%M:%S; uptime; ps -eo pid,pcpu,etime,args --sort=-pcpu | head -5; } >> $C/monitorA.txt; sleep 60; done ) &
MON=$!
cd $C/srcA; export PYTHONPATH=$PWD
rm -rf $C/homeA; mkdir -p $C/homeA
export SPECSCOPE_CACHE=$C/homeA
T0=$(date +%s.%N)
/work/main/.venv/bin/python -m specscope.cli mtp train < /dev/null 2>&1 | stamp > $C/A.log
echo "rc=${PIPESTATUS[0]}" >> $C/A.log
echo "A wall_s $(echo "$(date +%s.%N) - $T0" | bc)" >> $C/walls.txt
kill $MON
echo done > $C/A.done
