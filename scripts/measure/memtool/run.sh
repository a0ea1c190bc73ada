#!/bin/bash
# usage: run.sh BIN MODE BINDING N [extra memtool args]; starts a gateway and a proxy, measures, stops them.
BIN=$1; MODE=$2; BINDING=$3; N=$4; shift 4
$BIN gateway --name gw1 --tcp 127.0.0.1:17001 --ws 127.0.0.1:17002 --http 127.0.0.1:17003 --log-level warn --log-format json >/tmp/memtool-gw.log 2>&1 &
GW=$!
sleep 1
$BIN proxy --tcp 127.0.0.1:17990 --ws 127.0.0.1:17888 --admin 127.0.0.1:17889 --backend 'tcp://127.0.0.1:17001#name=gw1' --log-level warn --log-format json $PROXYFLAGS >/tmp/memtool-proxy.log 2>&1 &
PX=$!
for i in $(seq 50); do curl -sf http://127.0.0.1:17889/stats >/dev/null && break; sleep 0.2; done
sleep 1
ADDR=127.0.0.1:17990; [ $BINDING = ws ] && ADDR=127.0.0.1:17888
"$(dirname "$0")/memtool" -mode $MODE -binding $BINDING -addr $ADDR -admin 127.0.0.1:17889 -pid $PX -n $N "$@"
kill $PX; wait $PX; kill $GW; wait $GW
