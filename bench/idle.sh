#!/usr/bin/env bash
# Idle users (issue #18): N virtual users (default 100,000) that each send `GET /` and then think
# 10 s, started at 10,000 users/s, against an nginx of their own that takes that many
# connections. Prints loadlens's peak RSS (GNU time) and per user, the kernel's socket memory,
# the achieved request rate against the ideal N / (10 s + latency), and the scheduling delay
# of the generator's wake-ups (the aggregator tick's lateness, `health.sched_delay_ms` of every
# snapshot: one timer on the same runtime as the users' think-time timers).
#
#   cargo build --release -p loadlens
#   sudo bench/idle.sh [USERS] [SECONDS]        # root: it makes a network namespace
#
# Set-up, and why:
# - A network namespace of its own (`unshare -n`, loopback only): its ephemeral port range
#   (`net.ipv4.ip_local_port_range`) is raised to 1024-65535 there without touching the host's,
#   and nothing outside sees the connections.
# - 100,000 connections to one address and port would need 100,000 ephemeral ports; the users
#   are split over four user types that each talk to another loopback address (127.0.0.1-4), so
#   each (source, destination) pair needs at most 25,000.
# - Descriptors: `ulimit -n` is raised to 1,048,576 (the kernel's nr_open) for loadlens and
#   nginx; nginx gets worker_connections 120000 and worker_rlimit_nofile 250000.
# - nginx keeps idle keep-alive connections 300 s (the users think 10 s between requests).
set -euo pipefail
USERS=${1:-100000}; DUR=${2:-40}; THINK=${THINK:-10}; RATE=${RATE:-10000}
BIN=${LOADLENS_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/loadlens}
PORT=${PORT:-18490}
if [ "${IN_NS:-}" != 1 ]; then
  exec unshare -n env IN_NS=1 USERS="$USERS" DUR="$DUR" THINK="$THINK" RATE="$RATE" \
    LOADLENS_BIN="$BIN" PORT="$PORT" OUT="${OUT:-}" bash "$0" "$@"
fi
ip link set lo up
sysctl -q -w net.ipv4.ip_local_port_range="1024 65535"
ulimit -Hn 1048576; ulimit -n 1048576
OUT=${OUT:-$(mktemp -d /tmp/loadlens-idle.XXXXXX)}
mkdir -p "$OUT/nginx/tmp"
cat > "$OUT/nginx/nginx.conf" <<NGX
worker_processes 1;
worker_rlimit_nofile 250000;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { worker_connections 120000; use epoll; multi_accept on; }
http {
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    client_body_temp_path $OUT/nginx/tmp;
    proxy_temp_path $OUT/nginx/tmp;
    fastcgi_temp_path $OUT/nginx/tmp;
    uwsgi_temp_path $OUT/nginx/tmp;
    scgi_temp_path $OUT/nginx/tmp;
    server {
        listen $PORT backlog=65535 reuseport;
        location = / { return 200 "ok"; }
    }
}
NGX
sysctl -q -w net.core.somaxconn=65535
taskset -c "${SERVER_CPU:-0}" nginx -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx"
trap 'kill "$(cat "$OUT/nginx/nginx.pid")" 2>/dev/null || true' EXIT
sleep 0.5
per=$(( USERS / 4 ))
{
  echo "name: idle-users"
  echo "user_types:"
  for i in 1 2 3 4; do
    cat <<YAML
  - name: idle$i
    weight: 1
    wait: constant($THINK)
    tasks:
      - request: { path: "http://127.0.0.$i:$PORT/", name: "GET /" }
YAML
  done
  echo "load: { users: $USERS, spawn_rate: $RATE, run_time: ${DUR}s }"
} > "$OUT/idle.yaml"
cat /proc/net/sockstat > "$OUT/sockstat.before"
( sleep $(( DUR - 5 )); cat /proc/net/sockstat > "$OUT/sockstat.during";
  ps -o rss= -p "$(pgrep -P "$(cat "$OUT/nginx/nginx.pid")" | head -1)" > "$OUT/nginx.rss" ) &
taskset -c "${GEN_CPU:-1}" /usr/bin/time -v -o "$OUT/time.txt" "$BIN" run "$OUT/idle.yaml" \
  --json "$OUT/result.json" --jsonl "$OUT/telemetry.jsonl" > "$OUT/stdout.txt" 2>&1 || echo "loadlens exit $?" >&2
wait
python3 - "$OUT" "$USERS" "$THINK" "$DUR" "$RATE" <<'PY'
import json, re, sys, statistics as st
out, users, think, dur, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
t = open(out + "/time.txt").read()
g = lambda k: float(re.search(re.escape(k) + r": *([0-9.]+)", t).group(1))
rss = g("Maximum resident set size (kbytes)") / 1024
d = json.load(open(out + "/result.json"))
agg = d["aggregate"]
def sock(f):
    txt = open(out + "/" + f).read()
    tcp = re.search(r"TCP: inuse (\d+).*mem (\d+)", txt)
    return int(tcp.group(1)), int(tcp.group(2)) * 4 / 1024
inuse, mem = sock("sockstat.during")
ng = int(open(out + "/nginx.rss").read().strip() or 0) / 1024
lines = [json.loads(l) for l in open(out + "/telemetry.jsonl")]
delays = [l["sched_delay_ms"] for l in lines if l.get("event") == "health" and l.get("sched_delay_ms") is not None]
rss_ticks = [l["rss_bytes"] for l in lines if l.get("event") == "health" and l.get("rss_bytes")]
conns = max((l.get("open_connections") or 0 for l in lines if l.get("event") == "health"), default=0)
# After the ramp (users/rate seconds) and one think time, every user does one request per
# think time: the steady-state rate of the series' points past that.
ramp = users / rate
steady = [p["rps"] for p in d["series"]["points"] if p["elapsed_s"] > ramp + think + 1 and p["users"] == users]
lat = agg["latency_ms"]
ideal = users / (think + lat["avg"] / 1000)
print(f"users {users}  spawn rate {rate:.0f}/s  think {think:.0f} s  run {dur:.0f} s")
print(f"loadlens peak RSS {rss:.0f} MB = {rss * 1024 * 1024 / users / 1024:.1f} KB per user; "
      f"CPU {g('User time (seconds)') + g('System time (seconds)'):.1f} s")
print(f"kernel TCP sockets in use {inuse} (both ends), TCP buffer memory {mem:.0f} MB; nginx worker RSS {ng:.0f} MB")
print(f"requests {agg['request_count']} failures {agg['failure_count']}  overall {agg['rps']:.0f} req/s "
      f"(steady-state ideal {ideal:.0f} req/s)  latency p50 {lat['p50']:.2f} p99 {lat['p99']:.2f} max {lat['max']:.1f} ms")
print(f"open connections (max of ticks) {conns}; steady-state req/s per tick: median {st.median(steady) if steady else 0:.0f} over {len(steady)} ticks")
if delays:
    print(f"wake-up (tick) scheduling delay: median {st.median(delays):.2f} ms, max {max(delays):.2f} ms, p90 {sorted(delays)[int(0.9 * (len(delays) - 1))]:.2f} ms over {len(delays)} ticks")
PY
echo "files: $OUT" >&2
