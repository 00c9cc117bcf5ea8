#!/usr/bin/env bash
# restart.sh DUR: a fresh server, one cold run; the server restarted on the same data, a cold run again.
set -uo pipefail
BIN=/root/.cache/hotline/target-meter/release; W=/tmp/coldx; ulimit -n 20000; dur=$1
start() {
  $BIN/hotline serve --listen 127.0.0.1:0 --data-dir $W/data --cores 2 --durability $dur --metrics-listen 127.0.0.1:19191 --log-level warn \
    --login-attempts-per-ip-per-minute 0 --login-attempts-per-username-per-minute 0 --messages-per-user-per-second 0 \
    --messages-per-conversation-per-second 0 --connections-per-ip-max 0 --registrations-per-ip-per-hour 0 >$W/out 2>$W/err &
  PID=$!; for i in $(seq 100); do ADDR=$(sed -n 's/^hotline listening on //p' $W/out); [[ -n $ADDR ]] && break; sleep 0.1; done
}
run() {
  $BIN/hotline-loadgen run --target $ADDR --accounts $W/accounts.txt --connections 2000 --connect-rate 2000 --rate 10000 --pattern pairs --payload 100 \
    --warmup 0 --duration 10 --drain 3 --split-s 3 --server-pid $PID > $W/rs.txt 2>&1
  curl -s 127.0.0.1:19191/metrics | grep -E "^hotline_(messages_delivered|commit_fsync_latency_seconds_(sum|count))" | sed "s/^/  m: /"; echo "== $1"; grep -E '^ *(first|the rest)|stolen' $W/rs.txt
}
rm -rf $W/data; cp -a $W/pristine $W/data; sync
start; run "fresh data, fresh server"; kill $PID; wait $PID
start; run "same data (conversations exist), restarted server"; kill $PID; wait $PID
