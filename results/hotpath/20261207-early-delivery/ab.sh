#!/usr/bin/env bash
# ab.sh: parent (0d2a45a) against child (early delivery), compare-peers' pairs scenario, interleaved.
for round in 1 2; do
  for rate in 1000 2000 5000 10000 20000; do
    for dur in sync async; do
      for b in base ed; do
        out=$(/tmp/smoke2.sh /tmp/$b-bin $dur $rate | grep -E "delivery:|server:")
        p50=$(echo "$out" | sed -n 's/.*delivery: *p50 \([0-9]*\).*/\1/p')
        p99=$(echo "$out" | sed -n 's/.*p90 [0-9]* p99 \([0-9]*\).*/\1/p')
        cpu=$(echo "$out" | sed -n 's/.*CPU \([0-9]*\)% of a core.*/\1/p')
        echo "$round $rate $dur $b p50=$p50 p99=$p99 cpu=$cpu"
      done
    done
  done
done
