#!/usr/bin/env bash
# Trace receiver memory over a long run (issue 14): an open-model load against the demo target,
# whose spans flow back to `--trace-receiver`; the generator's RSS is read every 10 s. Prints
# the RSS curve (elapsed s, RSS MB, the run's VUs at that time) and the run's coverage at the
# end.
#
# The VUs are fixed (MAX_VUS, pre-allocated and most; 0 = the open model's defaults): with the
# defaults, a stall of the machine (another process taking both CPUs) makes the open model
# start more VUs, each with its connection and buffers, which it keeps to the end, and the RSS
# then follows the stalls, not the receiver. RECEIVER=off runs the same load without the
# receiver (the demo target's spans go nowhere) as the control.
#   cargo build --release -p loadlens && flock /tmp/loadlens-bench.lock bench/receiver-rss.sh [SECONDS] [RATE] [SAMPLING]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LOADLENS_BIN:-target/release/loadlens}
DUR=${1:-600}
RATE=${2:-2000}
SAMPLING=${3:-0.1}
OUT=${OUT:-$(mktemp -d)}
MAX_VUS=${MAX_VUS:-200}
RECEIVER=${RECEIVER:-on}
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null' EXIT
RECV_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" demo-target --port 0 --otlp-endpoint "http://127.0.0.1:$RECV_PORT" > "$OUT/target.out" &
PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$OUT/target.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$OUT/target.out")/api/products?limit=2
VU_FLAGS=()
[ "$MAX_VUS" != 0 ] && VU_FLAGS=(--pre-allocated-vus "$MAX_VUS" --max-vus "$MAX_VUS")
RECEIVER_FLAGS=(--trace-receiver "127.0.0.1:$RECV_PORT" --trace-receiver-grpc off --trace-sample "$SAMPLING")
[ "$RECEIVER" = off ] && RECEIVER_FLAGS=()
"$BIN" run --url "$URL" --arrival-rate "$RATE/s" -t "${DUR}s" "${VU_FLAGS[@]}" "${RECEIVER_FLAGS[@]}" \
  --json "$OUT/result.json" > "$OUT/run.out" 2>&1 &
RUN=$!
PIDS+=($RUN)
start=$(date +%s)
echo "elapsed_s rss_mb vus" > "$OUT/rss.txt"
while kill -0 "$RUN" 2>/dev/null; do
  rss=$(ps -o rss= -p "$RUN" 2>/dev/null || true)
  vus=$(grep -o 'users [0-9]*' "$OUT/run.out" 2>/dev/null | tail -1 | cut -d' ' -f2 || true)
  [ -n "$rss" ] && echo "$(( $(date +%s) - start )) $(( rss / 1024 )) ${vus:--}" >> "$OUT/rss.txt"
  sleep 10
done
wait "$RUN" || true
cat "$OUT/rss.txt"
python3 - "$OUT/result.json" "$OUT/rss.txt" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); a = d["aggregate"]; c = (d.get("breakdown") or {}).get("coverage", {})
print(f"requests {a['request_count']} rps {a['rps']:.0f}; coverage {c}")
rows = [l.split() for l in open(sys.argv[2]).read().splitlines()[1:]]
at = lambda t: next((int(r[1]) for r in rows if int(r[0]) >= t), None)
print(f"RSS MB at 10 s {at(10)}, 60 s {at(60)}, 300 s {at(300)}, end {rows[-1][1] if rows else None}; "
      f"after 60 s: min {min(int(r[1]) for r in rows if int(r[0]) >= 60) if at(60) else None}, "
      f"max {max(int(r[1]) for r in rows if int(r[0]) >= 60) if at(60) else None}")
PY
echo "files in $OUT"
