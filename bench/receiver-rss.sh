#!/usr/bin/env bash
# Trace receiver memory over a long run (issue 14): an open-model load against the demo target,
# whose spans flow back to `--trace-receiver`; the generator's RSS is read every 10 s. Prints
# the RSS curve (elapsed s, RSS MB) and the run's coverage at the end.
#   cargo build --release -p loadlens && bench/receiver-rss.sh [SECONDS] [RATE] [SAMPLING]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LOADLENS_BIN:-target/release/loadlens}
DUR=${1:-600}
RATE=${2:-2000}
SAMPLING=${3:-0.1}
OUT=${OUT:-$(mktemp -d)}
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null' EXIT
RECV_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" demo-target --port 0 --otlp-endpoint "http://127.0.0.1:$RECV_PORT" > "$OUT/target.out" &
PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$OUT/target.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$OUT/target.out")/api/products?limit=2
"$BIN" run --url "$URL" --arrival-rate "$RATE/s" -t "${DUR}s" \
  --trace-receiver "127.0.0.1:$RECV_PORT" --trace-receiver-grpc off --trace-sample "$SAMPLING" \
  --json "$OUT/result.json" > "$OUT/run.out" 2>&1 &
RUN=$!
PIDS+=($RUN)
start=$(date +%s)
echo "elapsed_s rss_mb" > "$OUT/rss.txt"
while kill -0 "$RUN" 2>/dev/null; do
  rss=$(ps -o rss= -p "$RUN" 2>/dev/null || true)
  [ -n "$rss" ] && echo "$(( $(date +%s) - start )) $(( rss / 1024 ))" >> "$OUT/rss.txt"
  sleep 10
done
wait "$RUN" || true
cat "$OUT/rss.txt"
python3 - "$OUT/result.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); a = d["aggregate"]; c = (d.get("breakdown") or {}).get("coverage", {})
print(f"requests {a['request_count']} rps {a['rps']:.0f}; coverage {c}")
PY
echo "files in $OUT"
