#!/usr/bin/env bash
# cold.sh MODE DURABILITY [RUNS]: fresh server; RUNS loadgen cold runs against it in a row.
# MODE hotline|nats
set -uo pipefail
BIN=${BIN:-/root/.cache/hotline/target-meter/release}
W=/tmp/coldx; mkdir -p $W
ulimit -n 20000
mode=$1; dur=${2:-sync}; runs=${3:-1}; shift 3 || true
SPLIT=${SPLIT:-1}
RATE=${RATE:-10000}
if [[ ! -s $W/accounts.txt ]]; then $BIN/hotline user provision --data-dir $W/pristine --prefix lg --count 2000 --out $W/accounts.txt >/dev/null; fi
if [[ $mode == hotline ]]; then
  rm -rf $W/data; cp -a $W/pristine $W/data; [[ ${SYNC:-0} == 1 ]] && sync
  $BIN/hotline serve --listen 127.0.0.1:0 --data-dir $W/data --cores 2 --durability $dur --metrics-listen off --log-level warn \
    --login-attempts-per-ip-per-minute 0 --login-attempts-per-username-per-minute 0 --messages-per-user-per-second 0 \
    --messages-per-conversation-per-second 0 --connections-per-ip-max 0 --registrations-per-ip-per-hour 0 >$W/out 2>$W/err &
  PID=$!
  for i in $(seq 100); do ADDR=$(sed -n 's/^hotline listening on //p' $W/out); [[ -n $ADDR ]] && break; sleep 0.1; done
  T=(--target $ADDR --accounts $W/accounts.txt)
else
  nats-server -a 127.0.0.1 -p 14222 >$W/nats.log 2>&1 & PID=$!; sleep 0.5
  T=(--target 127.0.0.1:14222 --target-kind nats)
fi
for r in $(seq $runs); do
  $BIN/hotline-loadgen run "${T[@]}" --connections 2000 --connect-rate 2000 --rate $RATE --pattern pairs --payload 100 \
    --warmup 0 --duration 10 --drain 3 --split-s $SPLIT --server-pid $PID "$@" --json $W/r$r.json > $W/r$r.txt 2>&1
  echo "== run $r ($mode $dur split $SPLIT)"; grep -E '^ *(books|delivery|first|the rest|server)' $W/r$r.txt
done
kill $PID; wait $PID 2>/dev/null
