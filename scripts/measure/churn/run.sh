#!/bin/bash
# usage: run.sh BINARY DURATION
BIN=$1; DUR=${2:-60s}
D=$(mktemp -d)
for i in 1 2 3; do
  $BIN gateway --name gw$i --tcp 127.0.0.1:0 --ws "" --http "" --log-level warn > $D/gw$i.out 2>$D/gw$i.err &
done
sleep 2
BK=""
for i in 1 2 3; do a=$(python3 -c "import json;print(json.loads(open('$D/gw$i.out').readline())['tcp'])"); BK="$BK --backend tcp://$a#name=gw$i"; done
$BIN proxy --tcp 127.0.0.1:0 --ws "" --admin 127.0.0.1:0 $BK --log-level warn > $D/px.out 2>$D/px.err &
PX=$!
sleep 2
T=$(python3 -c "import json;print(json.loads(open('$D/px.out').readline())['tcp'])")
A=$(python3 -c "import json;print(json.loads(open('$D/px.out').readline())['admin'])")
"$(dirname "$0")/churn" --target tcp://$T --admin $A --pid $PX --duration $DUR
kill $(jobs -p) 2>/dev/null; wait 2>/dev/null
rm -rf $D
