#!/usr/bin/env bash
# Live dashboard overhead (issue 5): the same closed-model load against nginx `/` (from
# ../shared/bench/server.sh, CPU 0) without and with `--web`, a browser-like SSE client (curl,
# CPU 0) following the event stream. The generator is pinned to CPU 1. Interleaved rounds.
#   cargo build --release -p loadlens && ../shared/bench/server.sh start
#   flock /tmp/loadlens-bench.lock bench/web.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LOADLENS_BIN:-target/release/loadlens}
ROUNDS=${1:-5}
DUR=${2:-10}
URL=${URL:-http://127.0.0.1:18480/}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for round in $(seq "$ROUNDS"); do
  for kind in plain web; do
    flags=()
    [ "$kind" = web ] && flags=(--web --web-port 0 --headless)
    /usr/bin/time -f "%U %S" -o "$TMP/time" taskset -c 1 "$BIN" run --url "$URL" -c 50 -z "${DUR}s" \
      --no-tui "${flags[@]}" --json "$TMP/$kind.json" > "$TMP/$kind.out" 2>&1 &
    pid=$!
    events=0
    if [ "$kind" = web ]; then
      for _ in $(seq 50); do grep -q '^dashboard: ' "$TMP/$kind.out" && break; sleep 0.1; done
      addr=$(sed -n 's/^dashboard: //p' "$TMP/$kind.out")
      taskset -c 0 curl -sN "${addr}events" > "$TMP/sse" 2>/dev/null &
      curl_pid=$!
    fi
    wait "$pid" || true
    if [ "$kind" = web ]; then
      kill "$curl_pid" 2>/dev/null || true
      events=$(grep -c '^data:' "$TMP/sse" || true)
    fi
    python3 - "$TMP/$kind.json" "$TMP/time" "$round" "$kind" "$events" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); u, s = map(float, open(sys.argv[2]).read().split()[-2:])
a = d["aggregate"]
print(f"round {sys.argv[3]} {sys.argv[4]:5} rps {a['rps']:9.0f}  cpu-s/100k {100000*(u+s)/max(a['request_count'],1):.3f}  sse events {sys.argv[5]}")
PY
  done
done
