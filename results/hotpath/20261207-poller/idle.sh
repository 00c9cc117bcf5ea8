#!/usr/bin/env bash
# idle.sh BIN LABEL [serve args]: 19,000 idle logged-in connections against a fresh copy of
# 19,000 provisioned accounts (made once with BIN/hotline, under /tmp/idle-work), `sync`,
# 2 cores; prints LABEL and the server's RSS growth per connection from the load
# generator's report (server_rss_bytes_per_connection). DUR (5) sets the run's seconds;
# SNAP=S also saves the server's /proc smaps and smaps_rollup S seconds in.
set -euo pipefail
ulimit -n 20000
BIN=$1; LABEL=$2; shift 2
W=/tmp/idle-work; mkdir -p $W
if [[ ! -s $W/accounts.txt ]]; then
  $BIN/hotline user provision --data-dir $W/pristine --prefix lg --count 19000 --out $W/accounts.txt >/dev/null
fi
rm -rf $W/data; cp -a $W/pristine $W/data
OFF="--login-attempts-per-ip-per-minute 0 --login-attempts-per-username-per-minute 0 --messages-per-user-per-second 0 --messages-per-conversation-per-second 0 --connections-per-ip-max 0 --registrations-per-ip-per-hour 0"
$BIN/hotline serve --listen 127.0.0.1:0 --data-dir $W/data --cores 2 --durability sync --metrics-listen off --log-level warn $OFF "$@" > $W/out 2>$W/err &
PID=$!
for _ in $(seq 1 300); do A=$(sed -n 's/^hotline listening on //p' $W/out); [[ -n $A ]] && break; sleep 0.1; done
$BIN/hotline-loadgen run --target $A --accounts $W/accounts.txt --connections 19000 --workers 2 --rate 0 --warmup 0 --duration ${DUR:-5} --server-pid $PID --source-addrs 127.0.0.2-127.0.0.9 --json $W/$LABEL.json > $W/lg.log 2>&1 || true &
LG=$!; if [[ -n ${SNAP:-} ]]; then sleep $SNAP; cat /proc/$PID/smaps_rollup > $W/rollup-$LABEL; cat /proc/$PID/smaps > $W/smaps-$LABEL; fi; wait $LG || true
kill -TERM $PID; wait $PID || true
python3 -c "
import json,sys
d=json.load(open('$W/$LABEL.json'))
def find(o,k):
  if isinstance(o,dict):
    for kk,v in o.items():
      if kk==k: return v
      r=find(v,k)
      if r is not None: return r
  return None
print('$LABEL', find(d,'server_rss_bytes_per_connection'))
"
