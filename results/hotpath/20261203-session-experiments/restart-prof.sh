#!/usr/bin/env bash
set -uo pipefail
BIN=/root/.cache/hotline/target-meter/release; W=/tmp/coldx; ulimit -n 20000; dur=$1
start() {
  $BIN/hotline serve --listen 127.0.0.1:0 --data-dir $W/data --cores 2 --durability $dur --metrics-listen off --log-level warn \
    --login-attempts-per-ip-per-minute 0 --login-attempts-per-username-per-minute 0 --messages-per-user-per-second 0 \
    --messages-per-conversation-per-second 0 --connections-per-ip-max 0 --registrations-per-ip-per-hour 0 >$W/out 2>$W/err &
  PID=$!; for i in $(seq 100); do ADDR=$(sed -n 's/^hotline listening on //p' $W/out); [[ -n $ADDR ]] && break; sleep 0.1; done
}
lg() { $BIN/hotline-loadgen run --target $ADDR --accounts $W/accounts.txt --connections 2000 --connect-rate 2000 --rate 10000 --pattern pairs --payload 100 \
    --warmup 0 --duration 10 --drain 3 --split-s 3 --server-pid $PID --mark-window $W/mk "$@" > $W/rs.txt 2>&1; }
rm -rf $W/data; cp -a $W/pristine $W/data; sync
if [[ ${FRESH:-0} == 0 ]]; then start; rm -f $W/mk; lg; kill $PID; wait $PID; fi
start; rm -f $W/mk; lg & LG=$!
while ! grep -q start $W/mk 2>/dev/null; do sleep 0.02; done
perf record -q -e sched:sched_switch -g -t $(ls /proc/$PID/task | while read t; do [[ $(cat /proc/$PID/task/$t/comm) == hotline-writer ]] && echo $t; done) -o $W/rp.data -- sleep 3 2>/dev/null
wait $LG; kill $PID; wait $PID
grep -E '^ *(first|the rest|send ack)' $W/rs.txt
perf report -i $W/rp.data --stdio --no-children --sort symbol -G 2>/dev/null | grep -v "^$" | head -120
