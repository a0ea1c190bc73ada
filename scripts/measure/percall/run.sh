#!/bin/bash
# usage: [PROXYENV="GOMAXPROCS=1"] run.sh BIN [tcp|ws] [DURATION] [bench flags...]
# Starts 3 gateways and a proxy (BIN), runs `BIN bench` through the proxy,
# and prints the proxy's system calls (all, and read/write from /proc/PID/io),
# context switches (of all its threads; threads that ended meanwhile are not
# counted) and CPU time per call carried. Needs perf for the count of all
# system calls (else only reads and writes are counted). PROXYENV is put in
# the proxy's environment only.
BIN=$1; BINDING=${2:-tcp}; DUR=${3:-10s}; shift 3 2>/dev/null
B=127.0.0.1
pids=()
backends=()
for i in 1 2 3; do
	$BIN gateway --name gw$i --tcp $B:1710$i --ws $B:1720$i --http $B:1730$i --log-level warn --log-format json >/tmp/percall-gw$i.log 2>&1 &
	pids+=($!)
	backends+=(--backend "tcp://$B:1710$i#name=gw$i")
done
sleep 1
env $PROXYENV $BIN proxy --tcp $B:17990 --ws $B:17888 --admin $B:17889 "${backends[@]}" --log-level warn --log-format json >/tmp/percall-proxy.log 2>&1 &
PX=$!
for i in $(seq 50); do curl -sf http://$B:17889/readyz >/dev/null && break; sleep 0.2; done
TARGET=tcp://$B:17990; [ "$BINDING" = ws ] && TARGET=ws://$B:17888/ws
snap() { # syscr syscw vol nonvol utime+stime(ticks)
	echo $(awk '/^syscr/{print $2}' /proc/$PX/io) $(awk '/^syscw/{print $2}' /proc/$PX/io) \
		$(cat /proc/$PX/task/*/status | awk '/^voluntary_ctxt/{s+=$2} END{print s}') \
		$(cat /proc/$PX/task/*/status | awk '/^nonvoluntary_ctxt/{s+=$2} END{print s}') \
		$(awk '{print $14+$15}' /proc/$PX/stat)
}
a=($(snap))
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -p $PX -o /tmp/percall-perf.txt -- sleep 0 2>/dev/null; then
	perf stat -e raw_syscalls:sys_enter -p $PX -o /tmp/percall-perf.txt &
	PERF=$!
fi
$BIN bench --target $TARGET --duration $DUR --json /tmp/percall-bench.json "$@" | tail -3
[ -n "$PERF" ] && kill -INT $PERF && wait $PERF
b=($(snap))
calls=$(python3 -c 'import json;r=json.load(open("/tmp/percall-bench.json"));print(r["calls_ok"])' 2>/dev/null)
all=$( [ -n "$PERF" ] && awk '/raw_syscalls/{gsub(",","",$1);print $1}' /tmp/percall-perf.txt)
python3 - "$calls" "${a[@]}" "${b[@]}" "$all" <<'PY'
import sys, os
c = int(sys.argv[1]); a = list(map(int, sys.argv[2:7])); b = list(map(int, sys.argv[7:12]))
all_ = sys.argv[12] if len(sys.argv) > 12 else ""
d = [y - x for x, y in zip(a, b)]
hz = os.sysconf("SC_CLK_TCK")
print(f"calls {c}: per call: reads {d[0]/c:.3f}, writes {d[1]/c:.3f}, " +
      (f"all syscalls {int(all_)/c:.3f}, " if all_ else "") +
      f"context switches {(d[2]+d[3])/c:.3f} (voluntary {d[2]/c:.3f}), CPU {d[4]/hz/c*1e6:.1f} µs")
PY
kill $PX; wait $PX 2>/dev/null
for p in "${pids[@]}"; do kill $p; wait $p 2>/dev/null; done
