#!/usr/bin/env bash
# Template overhead (issue 3): the same request plain vs. with three templated headers, a
# templated path and a JSONPath capture, against the demo target (pinned to CPU 0) with the
# generator pinned to CPU 1. Prints rps and generator CPU per 10k requests, interleaved runs.
#   cargo build --release -p loadlens && bench/templates.sh [REPS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LOADLENS_BIN:-target/release/loadlens}
REPS=${1:-3}
DUR=${2:-10}
TMP=$(mktemp -d)
trap 'kill $TARGET 2>/dev/null; rm -rf "$TMP"' EXIT
taskset -c 0 "$BIN" demo-target --port 0 --latency 0 --error-rate 0 > "$TMP/target.out" &
TARGET=$!
for _ in $(seq 50); do grep -q listening "$TMP/target.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$TMP/target.out")
cat > "$TMP/plain.yaml" <<YAML
user_types:
  - name: u
    headers: { X-Tenant: acme, X-Client: loadlens, X-Trace: fixed }
    tasks:
      - request: { path: /api/products/sku_1, name: product }
YAML
cat > "$TMP/templated.yaml" <<YAML
vars: { sku: sku_1, tenant: acme }
user_types:
  - name: u
    headers: { X-Tenant: "{{ tenant }}", X-Client: "vu-{{ vu_id }}", X-Trace: "{{ iteration }}" }
    tasks:
      - request:
          path: /api/products/{{ sku }}
          name: product
          capture: [{ json: \$.id, as: last_id }]
YAML
for rep in $(seq "$REPS"); do
  for kind in plain templated; do
    /usr/bin/time -f "%U %S" -o "$TMP/time" taskset -c 1 "$BIN" run "$TMP/$kind.yaml" -H "$URL" -u 50 -t "${DUR}s" \
      --json "$TMP/$kind.json" > /dev/null
    python3 - "$TMP/$kind.json" "$TMP/time" "$kind" "$rep" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); u, s = map(float, open(sys.argv[2]).read().split())
a = d["aggregate"]
print(f"rep {sys.argv[4]} {sys.argv[3]:9} rps {a['rps']:9.0f}  failures {a['failure_count']}  cpu-s/10k {10000*(u+s)/max(a['request_count'],1):.3f}")
PY
  done
done
