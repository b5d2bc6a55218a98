#!/usr/bin/env bash
# Side-by-side, interleaved runs of loadlens builds against wrk (and oha) on the bench nginx of
# ../shared/bench (issue #18): req/s (server-side count from nginx's stub_status), CPU seconds
# per 100k requests and peak RSS (GNU time), medians and per-round ratios to the first tool.
#
#   bench/perf.sh fast 5 10 wrk target/release/loadlens /tmp/loadlens-old
#   SLOW=1 bench/perf.sh slow 3 10 wrk target/release/loadlens
#   CORES=0,1 WRK_T=2 bench/perf.sh fast 3 10 wrk oha target/release/loadlens   # two cores
#
# Tools: `wrk`, `oha`, or a path to a loadlens binary. The generator is pinned to $GEN_CPU (1)
# unless CORES is set (then generator and nginx share those cores). Each measurement takes
# /tmp/loadlens-bench.lock (flock), so concurrent sessions do not measure each other (NOLOCK=1
# when the caller holds it, as bench/cores.sh does); nginx is started beforehand
# (../shared/bench/server.sh start) and never holds the lock.
set -euo pipefail
SCEN=${1:?fast|slow}; REPS=${2:?reps}; DUR=${3:?seconds}; shift 3
BENCH=${BENCH:-$(cd "$(dirname "$0")/../.." && pwd)/shared/bench}
[ -d "$BENCH" ] || BENCH=/work/shared/bench
PORT=${PORT:-18480}; GEN_CPU=${GEN_CPU:-1}; CORES=${CORES:-}
case $SCEN in
  fast) URL=http://127.0.0.1:$PORT/; C=${C:-50};;
  slow) URL=http://127.0.0.1:$PORT/slow; C=${C:-1000};;
  *) echo "scenario fast or slow" >&2; exit 2;;
esac
export PATH="/opt/bench/cargo/bin:$PATH"
OUT=${OUT:-/tmp/loadlens-perf/$(date +%Y%m%d-%H%M%S)-$SCEN}
mkdir -p "$OUT"
served() { curl -s "http://127.0.0.1:$PORT/nginx_status" | awk '/^ *[0-9]+ +[0-9]+ +[0-9]+/ { print $3 }'; }
# CPU ticks (user + system) of the target's worker processes: is the target the bottleneck?
# The target's master pid file: its workers are the master's children.
TARGET_PIDFILE=${TARGET_PIDFILE:-/opt/bench/nginx/nginx.pid}
target_ticks() { local t=0 p; for p in $(pgrep -P "$(cat "$TARGET_PIDFILE" 2>/dev/null || echo 0)" || true); do
  t=$(( t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0) )); done; echo $t; }
pin=${CORES:-$GEN_CPU}
run_one() { # TOOL REP
  local tool=$1 rep=$2 d="$OUT/$rep-$(basename "$1")-$RANDOM"
  mkdir -p "$d"
  local cmd
  case $tool in
    wrk) cmd=(wrk -t"${WRK_T:-1}" -c"$C" -d"${DUR}s" "$URL");;
    oha) cmd=(oha -z "${DUR}s" -c "$C" --no-tui "$URL");;
    *) cmd=("$tool" run --url "$URL" -c "$C" -z "${DUR}s" --json "$d/result.json");;
  esac
  echo "${cmd[*]}" > "$d/cmd.txt"
  local before after tb ta
  before=$(served); tb=$(target_ticks)
  local lock=(flock /tmp/loadlens-bench.lock)
  [ -n "${NOLOCK:-}" ] && lock=()
  "${lock[@]}" taskset -c "$pin" /usr/bin/time -v -o "$d/time.txt" \
    "${cmd[@]}" > "$d/stdout.txt" 2>&1 3>&- || echo "rc=$? $tool" >&2
  after=$(served); ta=$(target_ticks)
  python3 - "$d" "$tool" "$rep" "$before" "$after" "$DUR" "$(( ta - tb ))" "$(getconf CLK_TCK)" <<'PY' >> "$OUT/runs.tsv"
import re,sys
d,tool,rep,b,a,dur,tt,hz=sys.argv[1:]
t=open(d+"/time.txt").read()
g=lambda k: float(re.search(re.escape(k)+r": *([0-9.]+)",t).group(1))
cpu=g("User time (seconds)")+g("System time (seconds)")
rss=g("Maximum resident set size (kbytes)")/1024
n=int(a)-int(b)-1
wall=float(dur)  # the measured interval is the tool's own duration
print(f"{rep}\t{tool}\t{n/float(dur):.0f}\t{cpu/n*1e5:.3f}\t{rss:.1f}\t{g('User time (seconds)'):.2f}\t{g('System time (seconds)'):.2f}\t{cpu/wall*100:.0f}\t{int(tt)/int(hz)/wall*100:.0f}\t{d}")
PY
  tail -1 "$OUT/runs.tsv" >&2
}
printf 'rep\ttool\trps\tcpu_s_per_100k\tpeak_rss_mb\tuser_s\tsys_s\tgen_cpu_pct\ttarget_cpu_pct\tdir\n' > "$OUT/runs.tsv"
tools=("$@")
for rep in $(seq "$REPS"); do
  # Rotate the order each round, so no tool always runs after the same one.
  n=${#tools[@]}; k=$(( (rep-1) % n ))
  for i in $(seq 0 $((n-1))); do run_one "${tools[$(( (i+k) % n ))]}" "$rep"; done
done
python3 - "$OUT/runs.tsv" "${tools[@]}" <<'PY' | tee "$OUT/summary.md"
import sys,statistics as st,collections
rows=[l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
tools=sys.argv[2:]; base=tools[0]
by=collections.defaultdict(list); rnd=collections.defaultdict(dict)
for r in rows:
    by[r[1]].append(r); rnd[r[0]][r[1]]=r
print("| tool | req/s (median) | CPU-s/100k | peak RSS MB | req/s ÷ %s per round (median) | CPU ÷ %s (median) | generator / target CPU %% |"%(base,base))
print("|---|--:|--:|--:|--:|--:|--:|")
for t in tools:
    rs=by[t]; med=lambda i: st.median(float(r[i]) for r in rs)
    ratios=[float(v[t][2])/float(v[base][2]) for v in rnd.values() if t in v and base in v]
    cratios=[float(v[t][3])/float(v[base][3]) for v in rnd.values() if t in v and base in v]
    rr=", ".join(f"{x:.3f}" for x in ratios)
    print(f"| {t} | {med(2):,.0f} | {med(3):.3f} | {med(4):.1f} | {st.median(ratios):.3f} ({rr}) | {st.median(cratios):.3f} | {med(7):.0f} / {med(8):.0f} |")
PY
echo "runs: $OUT/runs.tsv" >&2
