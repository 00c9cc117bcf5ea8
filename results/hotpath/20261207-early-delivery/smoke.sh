#!/usr/bin/env bash
# smoke.sh BIN DUR RATE [extra serve args]: fresh server (--cores ${SCORES:-2}), pairs at RATE for 5 s, prints the loadgen summary.
set -uo pipefail
BIN=$1; dur=$2; rate=$3; shift 3
W=/tmp/smoke; mkdir -p $W
ulimit -n 20000
CONNS=${CONNS:-2000}
if [[ ! -s $W/accounts-$CONNS.txt ]]; then $BIN/hotline user provision --data-dir $W/pristine-$CONNS --prefix lg --count $CONNS --out $W/accounts-$CONNS.txt >/dev/null; fi
rm -rf $W/data; cp -a $W/pristine-$CONNS $W/data
$BIN/hotline serve --listen 127.0.0.1:0 --data-dir $W/data --cores ${SCORES:-2} --durability $dur --metrics-listen off --log-level warn \
  --login-attempts-per-ip-per-minute 0 --login-attempts-per-username-per-minute 0 --messages-per-user-per-second 0 \
  --messages-per-conversation-per-second 0 --connections-per-ip-max 0 --registrations-per-ip-per-hour 0 "$@" >$W/out 2>$W/err &
PID=$!
for i in $(seq 100); do ADDR=$(sed -n 's/^hotline listening on //p' $W/out); [[ -n $ADDR ]] && break; sleep 0.1; done
$BIN/hotline-loadgen run --target $ADDR --accounts $W/accounts-$CONNS.txt --connections ${LGCONNS:-$CONNS} --connect-rate 4000 --rate $rate \
  --pattern ${PATTERN:-pairs} --payload 100 --warmup 2 --duration ${SECS:-5} --drain 3 --server-pid $PID > $W/lg.txt 2>&1
kill $PID; wait $PID 2>/dev/null
grep -E '^ *(books|delivery|send ack|server|offered|achieved|delivered|lost)' $W/lg.txt | head -20
tail -3 $W/err
