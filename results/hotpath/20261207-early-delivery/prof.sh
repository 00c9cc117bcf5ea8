#!/usr/bin/env bash
# prof.sh BIN DUR RATE: fresh server, pairs at RATE, perf record of the server for 4 s of the window.
set -uo pipefail
BIN=$1; dur=$2; rate=$3
W=/tmp/smoke; mkdir -p $W
ulimit -n 20000
CONNS=2000
rm -rf $W/data; cp -a $W/pristine-$CONNS $W/data
$BIN/hotline serve --listen 127.0.0.1:0 --data-dir $W/data --cores 2 --durability $dur --metrics-listen off --log-level warn \
  --login-attempts-per-ip-per-minute 0 --login-attempts-per-username-per-minute 0 --messages-per-user-per-second 0 \
  --messages-per-conversation-per-second 0 --connections-per-ip-max 0 --registrations-per-ip-per-hour 0 >$W/out 2>$W/err &
PID=$!
for i in $(seq 100); do ADDR=$(sed -n 's/^hotline listening on //p' $W/out); [[ -n $ADDR ]] && break; sleep 0.1; done
$BIN/hotline-loadgen run --target $ADDR --accounts $W/accounts-$CONNS.txt --connections $CONNS --connect-rate 4000 --rate $rate \
  --pattern pairs --payload 100 --warmup 2 --duration 6 --drain 2 --server-pid $PID > $W/lg.txt 2>&1 &
LG=$!
sleep 4
perf record -F 1999 -g -p $PID -o $W/perf.data -- sleep 4 >/dev/null 2>&1
wait $LG
kill $PID; wait $PID 2>/dev/null
grep -E '^ *(books|delivery|server)' $W/lg.txt
perf report -i $W/perf.data --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -12 > $W/dso.txt
perf report -i $W/perf.data --no-children --sort comm,sym --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -40 > $W/sym.txt
perf report -i $W/perf.data --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]' > $W/comm.txt
