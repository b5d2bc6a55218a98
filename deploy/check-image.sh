#!/usr/bin/env bash
# Build and check the image of deploy/Containerfile where its build stage's base image cannot be
# pulled (no access to docker.io): the build stage's command runs on this host, and the file's
# runtime stage (its text from `FROM scratch` on) is built around that binary with podman (or
# docker). Then a load test runs from the image against a target on the host's loopback,
# read-only and as the image's user, and writes its result to a mounted directory.
#
#   apt-get install podman runc musl-tools && rustup target add x86_64-unknown-linux-musl
#   deploy/check-image.sh [TAG]          # default localhost/loadlens:check
#
# On a machine that can pull rust:1.95-bookworm, `docker build -f deploy/Containerfile .` does
# the same in one step. podman flags below: runc and cgroupfs (crun refuses hybrid cgroup
# set-ups), and limits no higher than the caller's (the engine's defaults may exceed them).
# Not part of scripts/test: the musl target comes from static.rust-lang.org, which not every
# machine reaches. What it printed on 2026-12-03 is in docs/benchmarks.md ("The image").
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-localhost/loadlens:check}
TARGET=x86_64-unknown-linux-musl
ENGINE=${ENGINE:-podman}
engine() {
  if [ "$ENGINE" = podman ]; then podman --cgroup-manager=cgroupfs --runtime runc "$@"; else docker "$@"; fi
}
for p in "$ENGINE" musl-gcc; do
  command -v "$p" >/dev/null || { echo "check-image: $p is missing (apt-get install podman runc musl-tools)" >&2; exit 2; }
done
rustup target list --installed | grep -qx "$TARGET" \
  || { echo "check-image: rustup target add $TARGET" >&2; exit 2; }

# The build stage's command (deploy/Containerfile).
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/loadlens-musl}
CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --locked -p loadlens --target "$TARGET"
BIN=$CARGO_TARGET_DIR/$TARGET/release/loadlens

WORK=$(mktemp -d /tmp/loadlens-image.XXXXXX)
trap 'kill "${TPID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
cp "$BIN" "$WORK/loadlens"
strip "$WORK/loadlens"
echo "binary: $(stat -c %s "$WORK/loadlens") bytes; $(file -b "$WORK/loadlens" 2>/dev/null || echo '(no file(1))')"
# The runtime stage, copying the binary from the context instead of from the build stage.
sed -n '/^FROM scratch/,$p' deploy/Containerfile \
  | sed 's#^COPY --from=build /loadlens /loadlens#COPY loadlens /loadlens#' > "$WORK/Containerfile"
grep -q '^COPY loadlens /loadlens' "$WORK/Containerfile" || { echo "check-image: runtime stage changed" >&2; exit 1; }
engine build -q -t "$TAG" "$WORK" >/dev/null
echo "image $TAG: user $(engine image inspect --format '{{.Config.User}}' "$TAG"), entrypoint $(engine image inspect --format '{{.Config.Entrypoint}}' "$TAG"), $(engine image inspect --format '{{.Size}}' "$TAG") bytes"

# A target on the host's loopback: the image's own binary, outside the image.
"$BIN" demo-target --port 0 --latency 0 > "$WORK/target.out" &
TPID=$!
for _ in $(seq 50); do grep -q 'listening on' "$WORK/target.out" && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$WORK/target.out")
mkdir -m 777 "$WORK/out"
engine run --rm --read-only --network host --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
  -v "$WORK/out:/out" "$TAG" run "$URL" -c 4 -z 3s --no-tui --json /out/result.json | tail -n 3
python3 - "$WORK/out/result.json" <<'PY'
import json, os, sys
doc = json.load(open(sys.argv[1]))
a = doc["aggregate"]
uid = os.stat(sys.argv[1]).st_uid
print(f"result written by uid {uid}: {a['request_count']} requests, {a['failure_count']} failures")
assert a["request_count"] > 0 and a["failure_count"] == 0 and uid == 65532, (a, uid)
PY
echo "check-image: OK"
