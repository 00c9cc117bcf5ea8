#!/usr/bin/env bash
# restart.sh BIN DUR [serve args]: a fresh server on fresh data and one cold run (pairs, 2,000
# connections, 10,000 msgs/s, 10 s, --split-s 3); then the server stopped and restarted on the
# same data, and the same cold run again: the cold start users meet after a deploy.
# (../20261203-session-experiments/restart.sh with the binaries and serve flags as arguments;
# accounts from smoke.sh's /tmp/smoke/pristine-2000.)
set -uo pipefail
BIN=$1; dur=$2; shift 2
W=/tmp/restartx; mkdir -p $W; ulimit -n 20000
start() {
  $BIN/hotline serve --listen 127.0.0.1:0 --data-dir $W/data --cores 2 --durability $dur --metrics-listen off --log-level warn \
    --login-attempts-per-ip-per-minute 0 --login-attempts-per-username-per-minute 0 --messages-per-user-per-second 0 \
    --messages-per-conversation-per-second 0 --connections-per-ip-max 0 --registrations-per-ip-per-hour 0 "$@" >$W/out 2>$W/err &
  PID=$!; for i in $(seq 100); do ADDR=$(sed -n 's/^hotline listening on //p' $W/out); [[ -n $ADDR ]] && break; sleep 0.1; done
}
run() {
  $BIN/hotline-loadgen run --target $ADDR --accounts /tmp/smoke/accounts-2000.txt --connections 2000 --connect-rate 2000 --rate 10000 \
    --pattern pairs --payload 100 --warmup 0 --duration 10 --drain 3 --split-s 3 --server-pid $PID > $W/rs.txt 2>&1
  echo "== $1"; grep -E '^ *(first|the rest)|books' $W/rs.txt
}
rm -rf $W/data; cp -a /tmp/smoke/pristine-2000 $W/data; sync
start "$@"; run "fresh data, fresh server"; kill $PID; wait $PID
start "$@"; run "same data (conversations exist), restarted server"; kill $PID; wait $PID
