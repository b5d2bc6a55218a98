#!/usr/bin/env bash
# One core and two cores, generator and target together (issue #18): the bench nginx's worker
# and the generator share CPU 1, then share CPUs 0 and 1 — the only honest set-up on a 2-core
# machine, since a target on cores of its own would leave the generator one core. wrk runs
# with -t1 then -t2; oha and loadlens use what they are given (loadlens: the single-threaded
# runtime on one CPU, the multi-threaded one on two). Holds /tmp/loadlens-bench.lock for the
# whole run (the nginx worker's affinity is changed, then put back to CPU 0).
#   ../shared/bench/server.sh start
#   bench/cores.sh [REPS] [SECONDS] [LOADLENS_BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}; DUR=${2:-8}; BIN=${3:-target/release/loadlens}
worker=$(pgrep -P "$(cat /opt/bench/nginx/nginx.pid)" | head -1)
exec 9>/tmp/loadlens-bench.lock
flock 9
trap 'taskset -pc 0 "$worker" >/dev/null' EXIT
taskset -pc 1 "$worker" >/dev/null
NOLOCK=1 CORES=1 WRK_T=1 OUT=${OUT:-/tmp/loadlens-cores}/1 bench/perf.sh fast "$REPS" "$DUR" wrk oha "$BIN" 9>&-
taskset -pc 0,1 "$worker" >/dev/null
NOLOCK=1 CORES=0,1 WRK_T=2 OUT=${OUT:-/tmp/loadlens-cores}/2 bench/perf.sh fast "$REPS" "$DUR" wrk oha "$BIN" 9>&-
