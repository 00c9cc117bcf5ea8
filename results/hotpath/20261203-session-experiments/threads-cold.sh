#!/usr/bin/env bash
# threads-cold.sh DUR: per-thread CPU (ms) of the server over the first 3 s of the window, fresh data then restarted.
set -uo pipefail
BIN=/root/.cache/hotline/target-meter/release; W=/tmp/coldx; ulimit -n 20000; dur=$1
start() {
  $BIN/hotline serve --listen 127.0.0.1:0 --data-dir $W/data --cores 2 --durability $dur --metrics-listen off --log-level warn \
    --login-attempts-per-ip-per-minute 0 --login-attempts-per-username-per-minute 0 --messages-per-user-per-second 0 \
    --messages-per-conversation-per-second 0 --connections-per-ip-max 0 --registrations-per-ip-per-hour 0 >$W/out 2>$W/err &
  PID=$!; for i in $(seq 100); do ADDR=$(sed -n 's/^hotline listening on //p' $W/out); [[ -n $ADDR ]] && break; sleep 0.1; done
}
snap() { for t in /proc/$1/task/*; do echo "$(cat $t/comm | tr ' ' _) $(awk '{print $14+$15}' $t/stat) $(grep -E '^(non)?voluntary_ctxt_switches' $t/status | awk '{printf "%s ", $2}')"; done | sort; }
one() {
  rm -f $W/mk
  $BIN/hotline-loadgen run --target $ADDR --accounts $W/accounts.txt --connections 2000 --connect-rate 2000 --rate 10000 --pattern pairs --payload 100 \
    --warmup 0 --duration 10 --drain 3 --split-s 3 --server-pid $PID --mark-window $W/mk > $W/rs.txt 2>&1 &
  LG=$!
  while ! grep -q start $W/mk 2>/dev/null; do sleep 0.02; done
  snap $PID > $W/s0; L0=$(snap $$ >/dev/null; cat /proc/loadavg); sleep 3; snap $PID > $W/s1
  wait $LG
  echo "== $1"; grep -E '^ *(first 3)' $W/rs.txt
  join <(awk '{print $1"_"NR, $2, $3, $4}' $W/s0) <(awk '{print $1"_"NR, $2, $3, $4}' $W/s1) | awk '{d=($5-$2)*10; if (d>0) printf "  %-22s cpu %5d ms  vol %6d  invol %6d\n", $1, d, $6-$3, $7-$4}'
}
rm -rf $W/data; cp -a $W/pristine $W/data; sync
start; one "fresh data"; kill $PID; wait $PID
start; one "restarted"; kill $PID; wait $PID
