#!/usr/bin/env bash
# Distributed runs (issue 16): the same quick-mode load against nginx as one process, as a
# coordinator with 1 worker and with 2 workers; throughput, and the coordinator's CPU, peak RSS
# and bytes received per worker (through a counting TCP relay between workers and coordinator).
# On a 2-core machine nginx and every generator share both cores: the scaling shown is what this
# machine allows, not what N machines give.
#   cargo build --release -p loadlens && flock /tmp/loadlens-bench.lock bench/distributed.sh [REPS] [SECONDS] [CONNS]
# Needs nginx (Debian: nginx-light) and GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LOADLENS_BIN:-$PWD/target/release/loadlens}
REPS=${1:-3}
DUR=${2:-10}
CONNS=${3:-50}
TMP=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; kill "$(cat "$TMP/nginx/nginx.pid" 2>/dev/null)" 2>/dev/null || true; sleep 0.2; rm -rf "$TMP"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

NGINX_PORT=$(free_port)
mkdir -p "$TMP/nginx/logs"
cat > "$TMP/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { return 200 "ok"; }
  }
}
CONF
nginx -p "$TMP/nginx" -c nginx.conf 3>&- 4>&- 5>&-
URL=http://127.0.0.1:$NGINX_PORT/

# Counts the bytes workers send to the coordinator: listens on RELAY, forwards to COORD.
relay() { # RELAY_PORT COORD_PORT OUT
  python3 - "$@" <<'PY' &
import asyncio, os, sys
relay, coord, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
total = [0]
async def pipe(r, w, count):
    try:
        while data := await r.read(65536):
            if count: total[0] += len(data)
            w.write(data); await w.drain()
    except Exception: pass
    finally:
        w.close()
        open(out + ".tmp", "w").write(str(total[0])); os.replace(out + ".tmp", out)
async def handle(cr, cw):
    sr, sw = await asyncio.open_connection("127.0.0.1", coord)
    await asyncio.gather(pipe(cr, sw, True), pipe(sr, cw, False))
async def main():
    s = await asyncio.start_server(handle, "127.0.0.1", relay)
    async with s: await s.serve_forever()
asyncio.run(main())
PY
  PIDS+=($!)
}

rps() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); a=d["aggregate"]; print(a["request_count"], round(a["request_count"]/d["run"]["duration_s"]))' "$1"; }

printf '| rep | one process req/s | coordinator + 1 worker req/s | + 2 workers req/s | coordinator CPU-s (1 / 2 workers) | coordinator peak RSS MB (1 / 2) | bytes from workers per worker-second (1 / 2) |\n|--:|--:|--:|--:|--:|--:|--:|\n'
for rep in $(seq "$REPS"); do
  "$BIN" run --url "$URL" -c "$CONNS" -z "${DUR}s" --no-tui --json "$TMP/single.json" > /dev/null 2>&1
  read -r _ single < <(rps "$TMP/single.json")
  cols=()
  for n in 1 2; do
    cport=$(free_port); rport=$(free_port)
    /usr/bin/time -f "%U %S %M" -o "$TMP/time.$n" "$BIN" coordinator --url "$URL" -c "$CONNS" -z "${DUR}s" \
      --workers "$n" --listen "127.0.0.1:$cport" --no-tui --json "$TMP/coord.$n.json" > "$TMP/coord.$n.out" 2>&1 &
    cpid=$!
    for _ in $(seq 100); do grep -q listening "$TMP/coord.$n.out" 2>/dev/null && break; sleep 0.1; done
    relay "$rport" "$cport" "$TMP/bytes.$n"
    sleep 0.3
    wpids=()
    for i in $(seq 0 $((n - 1))); do
      "$BIN" run --url "$URL" -c "$CONNS" -z "${DUR}s" --workers "$n" --worker-index "$i" \
        --coordinator "http://127.0.0.1:$rport" --no-tui --json "$TMP/w$i.json" > "$TMP/w$i.out" 2>&1 &
      wpids+=($!)
    done
    wait "${wpids[@]}" "$cpid" || true
    sleep 0.3
    kill "${PIDS[-1]}" 2>/dev/null; wait "${PIDS[-1]}" 2>/dev/null || true
    read -r _ r < <(rps "$TMP/coord.$n.json")
    read -r u s m < "$TMP/time.$n"
    sleep 0.2
    b=$(cat "$TMP/bytes.$n" 2>/dev/null || true); b=${b:-0}
    cols+=("$r" "$(python3 -c "print(round($u+$s,2))")" "$(python3 -c "print(round($m/1024,1))")" "$(python3 -c "print(round($b/($n*$DUR)))")")
  done
  printf '| %s | %s | %s | %s | %s / %s | %s / %s | %s / %s |\n' "$rep" "$single" "${cols[0]}" "${cols[4]}" \
    "${cols[1]}" "${cols[5]}" "${cols[2]}" "${cols[6]}" "${cols[3]}" "${cols[7]}"
done
