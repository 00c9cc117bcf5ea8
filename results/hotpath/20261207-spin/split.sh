#!/bin/bash
# split.sh: the server's samples in /tmp/smoke/perf.data by owner (kernel, RocksDB, Hotline, ...)
cd /tmp/smoke && perf report -i perf.data --no-children --sort dso,sym --stdio 2>/dev/null | grep -E '^ +[0-9]' > all.txt
awk '$1 ~ /%$/ {pct=$1; sub("%","",pct); dso=$2; line=$0; cat="other-user";
if (dso ~ /kernel/) cat="kernel"; else if (dso ~ /libc/) cat="libc (mem*, etc.)"; else if (dso ~ /vdso/) cat="vdso (clock)"; else if (dso ~ /stdc/) cat="libstdc++";
else if (line ~ /rocksdb|crc32c|InlineSkipList/) cat="RocksDB";
else if (line ~ /hotline_engine|hotline_wire|hotline_transport/) cat="Hotline";
else if (line ~ /monoio/) cat="monoio";
else if (line ~ /flatbuffers/) cat="flatbuffers";
else if (line ~ /mi_|_mi_|mimalloc/) cat="mimalloc";
else if (line ~ /hashbrown|core::hash|siphash|SipHasher|RandomState|rustc_hash/) cat="hash maps";
else if (line ~ /crossbeam/) cat="crossbeam queues";
else if (line ~ /io_uring/) cat="io-uring crate";
else if (line ~ /alloc::|core::|std::/) cat="Rust std/core";
s[cat]+=pct} END{for (c in s) printf "%6.2f%%  %s\n", s[c], c}' all.txt | sort -rn
