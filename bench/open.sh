#!/usr/bin/env bash
# Open model at a constant arrival rate (issue 4): loadlens and k6's constant-arrival-rate back to
# back, against nginx /slow (50 ms, from ../shared/bench/server.sh, pinned to CPU 0), each
# generator pinned to CPU 1. Prints started/intended, dropped, scheduling delay, CPU and RSS.
#   cargo build --release -p loadlens && ../shared/bench/server.sh start
#   flock /tmp/loadlens-bench.lock bench/open.sh [ROUNDS] [SECONDS] [RATE] [TOOLS]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LOADLENS_BIN:-target/release/loadlens}
ROUNDS=${1:-2}
DUR=${2:-20}
RATE=${3:-20000}
TOOLS=${4:-"loadlens k6"}
PRE=${PRE:-1200}
MAX=${MAX:-3000}
URL=${URL:-http://127.0.0.1:18480/slow}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cat > "$TMP/k6.js" <<JS
import http from 'k6/http';
export const options = {
  discardResponseBodies: true,
  scenarios: { car: { executor: 'constant-arrival-rate', rate: $RATE, timeUnit: '1s',
                      duration: '${DUR}s', preAllocatedVUs: $PRE, maxVUs: $MAX } },
};
export default function () { http.get('$URL'); }
JS
for round in $(seq "$ROUNDS"); do
  for tool in $TOOLS; do
    case $tool in
      loadlens)
        /usr/bin/time -f "%U %S %M" -o "$TMP/time" taskset -c 1 "$BIN" run --url "$URL" \
          --arrival-rate "$RATE/s" --pre-allocated-vus "$PRE" --max-vus "$MAX" -t "${DUR}s" \
          --json "$TMP/ll.json" > "$TMP/ll.out" 2>&1 || true
        python3 - "$TMP/ll.json" "$TMP/time" "$round" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); u, s, m = open(sys.argv[2]).read().split()[-3:]
a = d["arrivals"]; sd = a["schedule_delay_ms"]; t = d["aggregate"]
print(f"round {sys.argv[3]} loadlens started {a['started']:>7} / {a['intended']:>7} = {a['achieved_pct']:6.2f} %  "
      f"dropped {a['dropped_iterations']:>6}  VUs {a['vus_allocated']:>5}  sched p50 {sd['p50']:.2f} p99 {sd['p99']:.2f} max {sd['max']:.1f} ms  "
      f"latency p50 {t['latency_ms']['p50']:.1f} p99 {t['latency_ms']['p99']:.1f} ms  "
      f"cpu {float(u)+float(s):.1f} s  rss {int(m)/1024:.0f} MB")
PY
        ;;
      k6)
        /usr/bin/time -f "%U %S %M" -o "$TMP/time" taskset -c 1 k6 run --quiet --no-color \
          --summary-export "$TMP/k6.json" "$TMP/k6.js" > "$TMP/k6.out" 2>&1 || true
        python3 - "$TMP/k6.json" "$TMP/time" "$round" "$RATE" "$DUR" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); u, s, m = open(sys.argv[2]).read().split()[-3:]
mt = d["metrics"]; it = mt["iterations"]["count"]; intended = int(sys.argv[4]) * int(sys.argv[5])
dr = mt.get("dropped_iterations", {}).get("count", 0); vus = mt.get("vus_max", {}).get("max", 0)
dur = mt["http_req_duration"]
print(f"round {sys.argv[3]} k6       started {it:>7} / {intended:>7} = {100*it/intended:6.2f} %  "
      f"dropped {dr:>6}  VUs {vus:>5}  sched -  latency med {dur['med']:.1f} p95 {dur['p(95)']:.1f} ms  "
      f"cpu {float(u)+float(s):.1f} s  rss {int(m)/1024:.0f} MB")
PY
        ;;
    esac
  done
done
