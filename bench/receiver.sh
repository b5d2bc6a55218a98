#!/usr/bin/env bash
# Trace receiver overhead (issue 14): the same closed-model load against the demo target with
# 10 % sampling and the demo target's spans flowing back, with and without `--trace-receiver`.
# In both runs the demo target exports its spans (server span + cache + database per sampled
# request) and loadlens exports its client spans (`--otel`) to a minimal OTLP/HTTP sink that
# answers 200; with the receiver, the demo target's spans go to loadlens instead and are
# joined. The demo target and the sink share CPU 0, the generator is pinned to CPU 1.
# Interleaved runs; prints rps, coverage and spans joined per run, then the ratios.
#   cargo build --release -p loadlens && flock /tmp/loadlens-bench.lock bench/receiver.sh [REPS] [SECONDS] [VUS]
#   SAMPLING=1 RECEIVER_FLAGS="--trace-join-window 1s" bench/receiver.sh 2 8   # spans/s on one core
#   BASE_BIN=/tmp/loadlens-old bench/receiver.sh 10 8   # before/after: each round also runs the
#                                                       # pair with BASE_BIN, ratios for both
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LOADLENS_BIN:-target/release/loadlens}
REPS=${1:-3}
DUR=${2:-10}
VUS=${3:-50}
SAMPLING=${SAMPLING:-0.1}
# More receiver flags, e.g. RECEIVER_FLAGS="--trace-join-window 1s" (at most 50,000 requests
# wait for their spans at once, each for the whole window: 100 % sampling at high rates needs
# a short window).
RECEIVER_FLAGS=${RECEIVER_FLAGS:-}
TMP=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; rm -rf "$TMP"' EXIT

taskset -c 0 python3 - > "$TMP/sink.out" <<'PY' &
import http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(f"listening on http://127.0.0.1:{s.server_port}", flush=True)
s.serve_forever()
PY
PIDS+=($!)
wait_line() { for _ in $(seq 100); do grep -q listening "$1" 2>/dev/null && return; sleep 0.1; done; echo "no $1" >&2; exit 1; }
wait_line "$TMP/sink.out"
SINK=$(sed -n 's/^listening on //p' "$TMP/sink.out")
# A free port for the receiver (bound and released by Python: loadlens binds it right after).
RECV_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# Two demo targets, identical but for where their spans go.
start_target() { # NAME OTLP_BASE
  taskset -c 0 "$BIN" demo-target --port 0 --latency 0 --error-rate 0 --otlp-endpoint "$2" > "$TMP/$1.out" &
  PIDS+=($!)
  wait_line "$TMP/$1.out"
}
start_target target-sink "$SINK"
start_target target-recv "http://127.0.0.1:$RECV_PORT"
URL_SINK=$(sed -n 's/^listening on //p' "$TMP/target-sink.out")/api/products?limit=2
URL_RECV=$(sed -n 's/^listening on //p' "$TMP/target-recv.out")/api/products?limit=2

KINDS="without with"
[ -n "${BASE_BIN:-}" ] && KINDS="without with base-without base-with"
for rep in $(seq "$REPS"); do
  for kind in $KINDS; do
    bin=$BIN
    case $kind in base-*) bin=$BASE_BIN ;; esac
    case $kind in
      *without) url=$URL_SINK; flag=() ;;
      *with) url=$URL_RECV; flag=(--trace-receiver "127.0.0.1:$RECV_PORT" --trace-receiver-grpc off $RECEIVER_FLAGS) ;;
    esac
    OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=$SAMPLING \
      OTEL_EXPORTER_OTLP_ENDPOINT="$SINK" OTEL_METRIC_EXPORT_INTERVAL=1000 \
      /usr/bin/time -f "%U %S %M" -o "$TMP/time" taskset -c 1 "$bin" run --url "$url" \
      -c "$VUS" -z "${DUR}s" --otel "${flag[@]}" --json "$TMP/$kind-$rep.json" > "$TMP/$kind-$rep.out" 2>&1 \
      || { cat "$TMP/$kind-$rep.out"; exit 1; }
    python3 - "$TMP/$kind-$rep.json" "$TMP/time" "$kind" "$rep" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); u, s, rss = open(sys.argv[2]).read().split()
a = d["aggregate"]; b = d.get("breakdown") or {}; c = b.get("coverage", {})
print(f"rep {sys.argv[4]} {sys.argv[3]:12} rps {a['rps']:8.0f}  sampled {c.get('sampled', 0):7} joined {c.get('joined', 0):7} "
      f"spans received {c.get('spans_received', 0):8} joined {c.get('spans_joined', 0):8} dropped {c.get('spans_dropped', 0)} late {c.get('spans_late', 0)}  "
      f"cpu-s/10k {10000*(float(u)+float(s))/max(a['request_count'],1):.3f}  peak RSS {int(rss)/1024:.0f} MB")
PY
  done
done
python3 - "$TMP" "$REPS" $KINDS <<'PY'
import json, statistics, sys
tmp, reps, kinds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rps = {k: [json.load(open(f"{tmp}/{k}-{r}.json"))["aggregate"]["rps"] for r in range(1, reps + 1)] for k in kinds}
print(f"median rps: { {k: round(statistics.median(v)) for k, v in rps.items()} }")
for p in ["", "base-"]:
    if p + "with" not in rps:
        continue
    w, o = rps[p + "with"], rps[p + "without"]
    per_round = [x / y for x, y in zip(w, o)]
    paired = sorted(per_round)
    print(f"{p}with / {p}without = {statistics.median(w) / statistics.median(o):.3f} (ratio of medians); "
          f"per round: median {statistics.median(paired):.3f}, range {paired[0]:.3f}-{paired[-1]:.3f}; "
          f"rounds: {' '.join(f'{r:.3f}' for r in per_round)}")
PY
