#!/usr/bin/env bash
# Tracing overhead (issue 6): the same closed-model load untraced, with --otel at 100 % and at
# 1 % sampling. The demo target and a minimal OTLP/HTTP receiver (answers 200 to every export)
# share CPU 0; the generator is pinned to CPU 1. Interleaved runs; prints rps, spans delivered
# and generator CPU per 10k requests, then the median ratios.
#   cargo build --release -p loadlens && flock /tmp/loadlens-bench.lock bench/otel.sh [REPS] [SECONDS]
#   TARGET_URL=http://127.0.0.1:18480/ bench/otel.sh 10 5    # against nginx instead
#   KINDS="untraced same-headers always-off traced-1" bench/otel.sh 12 3   # the cost taken apart
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LOADLENS_BIN:-target/release/loadlens}
REPS=${1:-3}
DUR=${2:-10}
TMP=$(mktemp -d)
trap 'kill $TARGET $RECEIVER 2>/dev/null; rm -rf "$TMP"' EXIT
taskset -c 0 "$BIN" demo-target --port 0 --latency 0 --error-rate 0 > "$TMP/target.out" &
TARGET=$!
taskset -c 0 python3 - > "$TMP/receiver.out" <<'PY' &
import http.server, socketserver, sys
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
RECEIVER=$!
for _ in $(seq 50); do
  grep -q listening "$TMP/target.out" 2>/dev/null && grep -q listening "$TMP/receiver.out" 2>/dev/null && break
  sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$TMP/target.out")/api/products/sku_1
# TARGET_URL overrides the demo target, e.g. nginx from ../shared/bench/server.sh
# (http://127.0.0.1:18480/), which has headroom at these rates where the demo target does not.
URL=${TARGET_URL:-$URL}
OTLP=$(sed -n 's/^listening on //p' "$TMP/receiver.out")
# KINDS adds two runs that take the cost apart: `same-headers` is untraced but sends the same
# two headers (what the bytes on the wire cost), `always-off` propagates but samples nothing.
KINDS=${KINDS:-untraced traced-100 traced-1}
for rep in $(seq "$REPS"); do
  for kind in $KINDS; do
    case $kind in
      untraced) env=(); flag=() ;;
      traced-100) env=(OTEL_TRACES_SAMPLER=always_on); flag=(--otel) ;;
      traced-1) env=(OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01); flag=(--otel) ;;
      always-off) env=(OTEL_TRACES_SAMPLER=always_off); flag=(--otel) ;;
      same-headers) env=(); flag=(--header "traceparent: 00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-00"
                                  --header "baggage: loadtest.run_id=20261122-050000-abcdef,loadtest.synthetic=true") ;;
      *) echo "unknown kind $kind" >&2; exit 2 ;;
    esac
    env "${env[@]}" OTEL_EXPORTER_OTLP_ENDPOINT="$OTLP" OTEL_METRIC_EXPORT_INTERVAL=1000 \
      /usr/bin/time -f "%U %S" -o "$TMP/time" taskset -c 1 "$BIN" run --url "$URL" \
      -c 50 -z "${DUR}s" "${flag[@]}" --json "$TMP/$kind-$rep.json" > "$TMP/$kind-$rep.out"
    python3 - "$TMP/$kind-$rep.json" "$TMP/time" "$kind" "$rep" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); u, s = map(float, open(sys.argv[2]).read().split())
a = d["aggregate"]; sinks = {x["name"]: x for x in d.get("sinks", [])}
o = sinks.get("otlp", {})
print(f"rep {sys.argv[4]} {sys.argv[3]:10} rps {a['rps']:9.0f}  otlp delivered {o.get('delivered', 0):8} failed {o.get('failed', 0)} dropped {o.get('dropped', 0):6}  cpu-s/10k {10000*(u+s)/max(a['request_count'],1):.3f}")
PY
  done
done
python3 - "$TMP" "$REPS" $KINDS <<'PY'
import json, statistics, sys
tmp, reps, kinds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rps = {k: [json.load(open(f"{tmp}/{k}-{r}.json"))["aggregate"]["rps"] for r in range(1, reps + 1)]
       for k in kinds}
print(f"median rps: { {k: round(statistics.median(v)) for k, v in rps.items()} }")
# Each round's runs against the untraced run just before them: the machine's drift (other
# tenants, frequency) cancels out better than in a ratio of medians.
for k in kinds:
    if k == "untraced" or "untraced" not in rps:
        continue
    paired = sorted(t / u for t, u in zip(rps[k], rps["untraced"]))
    print(f"{k:12} / untraced = {statistics.median(rps[k]) / statistics.median(rps['untraced']):.3f} "
          f"(ratio of medians); per round: median {statistics.median(paired):.3f}, "
          f"range {paired[0]:.3f}-{paired[-1]:.3f}")
PY
