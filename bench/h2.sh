#!/usr/bin/env bash
# HTTP/2 on TLS (issue #18): h2load (Debian nghttp2-client) and oha --http2 at 50 connections
# x 10 streams; loadlens --http2 at 500 users sharing 50 connections x 10 streams
# (--http2-streams 10), and in its default (each user its own connection) at 50 users (50 x 1)
# and 500 users (500 connections), against an nginx with
# `http2` on TLS of its own (self-signed, port 18443, one worker on CPU 0); the generator on
# CPU 1. Interleaved rounds; requests counted by nginx (stub_status), CPU and RSS by GNU time.
#   apt-get install nghttp2-client nginx; cargo build --release -p loadlens
#   bench/h2.sh [REPS] [SECONDS] [LOADLENS_BIN]
set -euo pipefail
REPS=${1:-3}; DUR=${2:-8}; BIN=${3:-$(cd "$(dirname "$0")/.." && pwd)/target/release/loadlens}
export PATH="/opt/bench/cargo/bin:$PATH"
D=${OUT:-/tmp/loadlens-h2}; mkdir -p "$D/tmp"
[ -f "$D/cert.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout "$D/key.pem" \
  -out "$D/cert.pem" -days 2 -subj /CN=localhost 2>/dev/null
cat > "$D/nginx.conf" <<NGX
worker_processes 1;
pid $D/nginx.pid;
error_log $D/error.log warn;
events { worker_connections 4096; use epoll; }
http {
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 100000000;
    http2_max_concurrent_streams 128;
    client_body_temp_path $D/tmp; proxy_temp_path $D/tmp; fastcgi_temp_path $D/tmp;
    uwsgi_temp_path $D/tmp; scgi_temp_path $D/tmp;
    server {
        listen 127.0.0.1:18443 ssl http2;
        ssl_certificate $D/cert.pem; ssl_certificate_key $D/key.pem;
        location = / { return 200 "ok"; }
        location = /nginx_status { stub_status; }
    }
}
NGX
[ -f "$D/nginx.pid" ] && kill "$(cat "$D/nginx.pid")" 2>/dev/null && sleep 0.5
taskset -c 0 nginx -c "$D/nginx.conf" -p "$D"
trap 'kill "$(cat "$D/nginx.pid")" 2>/dev/null || true' EXIT
sleep 0.5
URL=https://127.0.0.1:18443/
served() { curl -sk "${URL}nginx_status" | awk '/^ *[0-9]+ +[0-9]+ +[0-9]+/ { print $3 }'; }
printf 'rep\ttool\trps\tcpu_s_per_100k\tpeak_rss_mb\n' > "$D/runs.tsv"
tools=(h2load oha loadlens-50x10 loadlens-50 loadlens-500)
for rep in $(seq "$REPS"); do
  for i in "${!tools[@]}"; do
    t=${tools[$(( (i + rep) % ${#tools[@]} ))]}
    case $t in
      h2load) cmd=(h2load -c 50 -m 10 -t 1 -D "$DUR" "$URL");;
      oha) cmd=(oha --http2 --insecure -c 50 -p 10 -z "${DUR}s" --no-tui "$URL");;
      loadlens-50x10) cmd=("$BIN" run --url "$URL" --http2 -k -c 500 --http2-streams 10 -z "${DUR}s");;
      loadlens-50) cmd=("$BIN" run --url "$URL" --http2 -k -c 50 -z "${DUR}s");;
      loadlens-500) cmd=("$BIN" run --url "$URL" --http2 -k -c 500 -z "${DUR}s");;
    esac
    b=$(served)
    flock /tmp/loadlens-bench.lock taskset -c 1 /usr/bin/time -f '%U %S %M' -o "$D/time" \
      "${cmd[@]}" > "$D/$rep-$t.out" 2>&1 9>&- || echo "$t exit $?" >&2
    a=$(served)
    read -r u s m < <(tail -1 "$D/time")
    n=$(( a - b - 1 ))
    python3 -c "import sys; u,s,m,n,d=map(float,sys.argv[1:]); print(f'$rep\t$t\t{n/d:.0f}\t{(u+s)/n*1e5:.3f}\t{m/1024:.1f}')" \
      "$u" "$s" "$m" "$n" "$DUR" | tee -a "$D/runs.tsv"
  done
done
python3 - "$D/runs.tsv" <<'PY'
import sys, statistics as st, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
by = collections.defaultdict(list); rnd = collections.defaultdict(dict)
for r in rows:
    by[r[1]].append(r); rnd[r[0]][r[1]] = r
print("| tool | req/s (median) | ÷ h2load per round (median) | CPU-s/100k | peak RSS MB |")
print("|---|--:|--:|--:|--:|")
for t, rs in by.items():
    ratio = [float(v[t][2]) / float(v["h2load"][2]) for v in rnd.values() if t in v and "h2load" in v]
    med = lambda i: st.median(float(r[i]) for r in rs)
    print(f"| {t} | {med(2):,.0f} | {st.median(ratio):.3f} | {med(3):.3f} | {med(4):.1f} |")
PY
