#!/usr/bin/env bash
# ab.sh SERVER_BIN WARMUP RATE DUR: fresh server, loadgen pairs sync, perf stat over the window.
set -uo pipefail
L=/root/.cache/hotline/target-meter/release/hotline-loadgen
W=/tmp/coldx; ulimit -n 20000
srv=$1; warm=$2; rate=$3; dur=${4:-10}; durab=${DURAB:-sync}
rm -f $W/mark; rm -rf $W/data; cp -a $W/pristine $W/data; sync
$srv serve --listen 127.0.0.1:0 --data-dir $W/data --cores 2 --durability $durab --metrics-listen off --log-level warn \
    --login-attempts-per-ip-per-minute 0 --login-attempts-per-username-per-minute 0 --messages-per-user-per-second 0 \
    --messages-per-conversation-per-second 0 --connections-per-ip-max 0 --registrations-per-ip-per-hour 0 >$W/out 2>$W/err &
PID=$!
for i in $(seq 100); do ADDR=$(sed -n 's/^hotline listening on //p' $W/out); [[ -n $ADDR ]] && break; sleep 0.1; done
$L run --target $ADDR --accounts $W/accounts.txt --connections 2000 --connect-rate 2000 --rate $rate --pattern pairs --payload 100 \
    --warmup $warm --duration $dur --drain 3 --server-pid $PID --mark-window $W/mark > $W/ab.txt 2>&1 &
LG=$!
while ! grep -q start $W/mark 2>/dev/null; do sleep 0.05; done
perf stat -x, -e task-clock,context-switches,syscalls:sys_enter_fdatasync,syscalls:sys_enter_pwrite64,syscalls:sys_enter_write -p $PID -o $W/perf.csv &
PP=$!
perf trace -s -e fdatasync -p $PID -o $W/trace.txt &
PT=$!
while ! grep -q end $W/mark 2>/dev/null; do sleep 0.05; done
kill -INT $PP $PT; wait $PP $PT
wait $LG
msgs=$(python3 -c "import json;print(1)" )
echo "== $srv warm $warm rate $rate"
grep -E '^ *(books|delivery|server)' $W/ab.txt
python3 - $W/perf.csv $rate $dur <<'PY'
import sys
rows={}
for l in open(sys.argv[1]):
    p=l.strip().split(',')
    if len(p)>3 and p[0] and p[0][0].isdigit(): rows[p[2]]=float(p[0])
n=float(sys.argv[2])*float(sys.argv[3])
print("  per msg: cpu_us %.1f ctxsw %.2f fdatasync %.2f writes %.2f" % (rows.get('task-clock',0)*1000/n, rows.get('context-switches',0)/n, rows.get('syscalls:sys_enter_fdatasync',0)/n, (rows.get('syscalls:sys_enter_write',0)+rows.get('syscalls:sys_enter_pwrite64',0))/n))
PY
grep -A4 'syscall  ' $W/trace.txt | grep fdatasync | sed 's/^/  trace:/'
ls -la $W/data/*.log | awk '{print "  wal", $5, $9}'
kill $PID; wait $PID 2>/dev/null
