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
# - Descriptors: a process may hold at most `ulimit -Hn` of them, and raising the hard limit
#   needs CAP_SYS_RESOURCE, which the machines of this project do not give even to root (hard
#   limit 20,000). So the users are run as SEGMENTS processes (`--segment I/N`, the exact split
#   of one run that distributed runs use; default: as many as keep each under 18,000 users),
#   and nginx runs 8 workers of 19,000 connections each on one `reuseport` listener. With
#   CAP_SYS_RESOURCE, `ulimit -n 1048576` and SEGMENTS=1 run them in one process.
# - nginx keeps idle keep-alive connections 300 s (the users think 10 s between requests).
set -euo pipefail
USERS=${1:-100000}; DUR=${2:-40}; THINK=${THINK:-10}; RATE=${RATE:-10000}
BIN=${LOADLENS_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/loadlens}
PORT=${PORT:-18490}
if [ "${IN_NS:-}" != 1 ]; then
  exec unshare -n env IN_NS=1 USERS="$USERS" DUR="$DUR" THINK="$THINK" RATE="$RATE" \
    LOADLENS_BIN="$BIN" PORT="$PORT" OUT="${OUT:-}" SEGMENTS="${SEGMENTS:-}" bash "$0" "$@"
fi
ip link set lo up
sysctl -q -w net.ipv4.ip_local_port_range="1024 65535"
ulimit -n "$(ulimit -Hn)"
SEGMENTS=${SEGMENTS:-$(( (USERS + 17999) / 18000 ))}
OUT=${OUT:-$(mktemp -d /tmp/loadlens-idle.XXXXXX)}
mkdir -p "$OUT/nginx/tmp"
cat > "$OUT/nginx/nginx.conf" <<NGX
worker_processes ${NGINX_WORKERS:-8};
worker_rlimit_nofile $(ulimit -Hn);
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { worker_connections 19000; use epoll; multi_accept on; }
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
( sleep $(( DUR - 5 )); cat /proc/net/sockstat > "$OUT/sockstat.during"
  for w in $(pgrep -P "$(cat "$OUT/nginx/nginx.pid")"); do ps -o rss= -p "$w"; done > "$OUT/nginx.rss" ) &
for i in $(seq 0 $(( SEGMENTS - 1 ))); do
  taskset -c "${GEN_CPU:-1}" /usr/bin/time -v -o "$OUT/time.$i.txt" "$BIN" run "$OUT/idle.yaml" \
    --segment "$((i + 1))/$SEGMENTS" --json "$OUT/result.$i.json" --jsonl "$OUT/telemetry.$i.jsonl" \
    > "$OUT/stdout.$i.txt" 2>&1 || echo "loadlens segment $i exit $?" >&2 &
done
wait
python3 - "$OUT" "$USERS" "$THINK" "$DUR" "$RATE" "$SEGMENTS" <<'PY'
import json, re, sys, statistics as st
out, users, think, dur, rate, segs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
rss, cpu, reqs, fails, conns, delays, steady = [], 0.0, 0, 0, 0, [], {}
lat99 = []
ramp = users / rate
for i in range(segs):
    t = open(f"{out}/time.{i}.txt").read()
    g = lambda k: float(re.search(re.escape(k) + r": *([0-9.]+)", t).group(1))
    rss.append(g("Maximum resident set size (kbytes)") / 1024)
    cpu += g("User time (seconds)") + g("System time (seconds)")
    d = json.load(open(f"{out}/result.{i}.json"))
    a = d["aggregate"]; reqs += a["request_count"]; fails += a["failure_count"]
    lat99.append(a["latency_ms"]["p99"])
    seg_conns = 0
    for l in open(f"{out}/telemetry.{i}.jsonl"):
        l = json.loads(l)
        if l.get("event") != "health":
            continue
        seg_conns = max(seg_conns, l.get("open_connections") or 0)
        if l.get("sched_delay_ms") is not None:
            delays.append(l["sched_delay_ms"])
    conns += seg_conns
    # Steady state: past the ramp and one think time, each user sends one request per think
    # time. Users started within the ramp and thinking a fixed time send in bursts, so the
    # window is whole think times long: the requests in it over its length.
    start = ramp + think
    periods = int((dur - 1 - start) // think)
    for p in d["series"]["points"]:
        if periods > 0 and start < p["elapsed_s"] <= start + periods * think:
            steady["requests"] = steady.get("requests", 0) + p["requests"]
            steady["seconds"] = periods * think
txt = open(out + "/sockstat.during").read()
tcp = re.search(r"TCP: inuse (\d+).*mem (\d+)", txt)
ng = sum(int(x) for x in open(out + "/nginx.rss").read().split()) / 1024
total = sum(rss)
print(f"users {users} in {segs} processes, spawn rate {rate:.0f}/s, think {think:.0f} s, run {dur:.0f} s")
print(f"loadlens peak RSS: sum {total:.0f} MB = {total * 1024 / users:.1f} KB per user "
      f"(per process: {', '.join(f'{r:.0f}' for r in rss)} MB); CPU {cpu:.1f} s")
print(f"open connections (sum of the processes' maxima) {conns}; kernel TCP sockets in use {tcp.group(1)} "
      f"(both ends), TCP buffer memory {int(tcp.group(2)) * 4 / 1024:.0f} MB; nginx workers' RSS {ng:.0f} MB")
ideal = users / think
sv = steady["requests"] / steady["seconds"] if steady else 0
print(f"requests {reqs}, failures {fails}; steady-state req/s (sum over processes, over whole think times): "
      f"{sv:.0f} of an ideal {ideal:.0f} (one request per user per {think:.0f} s, minus latency)")
print(f"latency p99 per process: {', '.join(f'{x:.2f}' for x in lat99)} ms")
if delays:
    ds = sorted(delays)
    print(f"wake-up scheduling delay (aggregator tick lateness, all processes' ticks): median {st.median(ds):.2f} ms, "
          f"p90 {ds[int(0.9 * (len(ds) - 1))]:.2f} ms, max {ds[-1]:.2f} ms over {len(ds)} ticks")
PY
echo "files: $OUT" >&2
