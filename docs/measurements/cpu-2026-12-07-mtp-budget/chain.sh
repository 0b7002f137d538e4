#!/bin/bash
# issue 32's budget curve: fresh 10 and 20 min heads; the default 30 min head (13:07-13:37) resumed +30 (60) and +30 (90)
set -u
C=/tmp/curve
cd $C/src
export PYTHONPATH=$PWD
PY=/work/main/.venv/bin/python
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date -u +%H:%M:%S)" "$l"; done; }
( while true; do { date -u +%H:%M:%S; uptime; ps -eo pid,pcpu,etime,args --sort=-pcpu | head -5; } >> $C/monitor.txt; sleep 60; done ) &
MON=$!
fresh() {  # $1 name
  rm -rf $C/$1; mkdir -p $C/$1
  ln -s /root/.cache/specscope/models $C/$1/models; ln -s /root/.cache/specscope/quant $C/$1/quant
}
run() {  # $1 name $2 minutes
  export SPECSCOPE_CACHE=$C/$1
  T0=$(date +%s.%N)
  $PY -m specscope.cli mtp train --minutes $2 < /dev/null 2>&1 | stamp > $C/$1.log
  echo "rc=${PIPESTATUS[0]}" >> $C/$1.log
  echo "$1 wall_s $(echo "$(date +%s.%N) - $T0" | bc)" >> $C/walls.txt
}
fresh c10; run c10 10
fresh c20; run c20 20
rm -rf $C/c60; mkdir -p $C/c60; ln -s /root/.cache/specscope/models $C/c60/models; ln -s /root/.cache/specscope/quant $C/c60/quant
cp -a /tmp/measure_mtp/cache/machine /tmp/measure_mtp/cache/mtp $C/c60/
run c60 30
rm -rf $C/c90; mkdir -p $C/c90; ln -s /root/.cache/specscope/models $C/c90/models; ln -s /root/.cache/specscope/quant $C/c90/quant
cp -a $C/c60/machine $C/c60/mtp $C/c90/
run c90 30
kill $MON
echo done > $C/chain.done
