#!/usr/bin/env bash
# One core and two cores, generator and target together (issue #18): a copy of the bench nginx
# runs with as many workers as there are cores in the step, and it and the generator share
# CPU 1, then CPUs 0 and 1 — the only honest set-up on a 2-core machine (a target on cores of
# its own would leave the generator one core, and a one-worker target could never use the
# second core). wrk runs with -t1 then -t2; oha and loadlens use what they are given
# (loadlens: the single-threaded runtime on one CPU, the multi-threaded one on two). Holds
# /tmp/loadlens-bench.lock for the whole run.
#   ../shared/bench/server.sh start        # writes /opt/bench/nginx/nginx.conf, copied here
#   bench/cores.sh [REPS] [SECONDS] [LOADLENS_BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}; DUR=${2:-8}; BIN=${3:-target/release/loadlens}
SRC=/opt/bench/nginx/nginx.conf; PORT=${CORES_PORT:-18482}; RUN=/tmp/loadlens-cores-nginx
[ -f "$SRC" ] || { echo "no $SRC: run ../shared/bench/server.sh start first" >&2; exit 2; }
mkdir -p "$RUN/tmp"
exec 9>/tmp/loadlens-bench.lock
flock 9
target() { # WORKERS CPUS: (re)start the copy with WORKERS workers pinned to CPUS
  [ -f "$RUN/nginx.pid" ] && nginx -p "$RUN" -c "$RUN/nginx.conf" -s stop 2>/dev/null || true
  sleep 0.5
  sed -e "s/^worker_processes .*/worker_processes $1;/" \
      -e "s#^pid .*#pid $RUN/nginx.pid;#" -e "s#^error_log .*#error_log $RUN/error.log warn;#" \
      -e "s#127.0.0.1:[0-9]*#127.0.0.1:$PORT#" -e "s#_temp_path [^;]*#_temp_path $RUN/tmp#" \
      "$SRC" > "$RUN/nginx.conf"
  taskset -c "$2" nginx -p "$RUN" -c "$RUN/nginx.conf"
  sleep 0.5
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/" || { echo "target on :$PORT did not start" >&2; exit 1; }
}
trap 'nginx -p "$RUN" -c "$RUN/nginx.conf" -s stop 2>/dev/null || true' EXIT
target 1 1
TARGET_PIDFILE=$RUN/nginx.pid PORT=$PORT NOLOCK=1 CORES=1 WRK_T=1 OUT=${OUT:-/tmp/loadlens-cores}/1 bench/perf.sh fast "$REPS" "$DUR" wrk oha "$BIN" 9>&-
target 2 0,1
TARGET_PIDFILE=$RUN/nginx.pid PORT=$PORT NOLOCK=1 CORES=0,1 WRK_T=2 OUT=${OUT:-/tmp/loadlens-cores}/2 bench/perf.sh fast "$REPS" "$DUR" wrk oha "$BIN" 9>&-
