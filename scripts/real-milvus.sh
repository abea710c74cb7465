#!/usr/bin/env bash
# A real Milvus standalone upgraded 2.2.16 -> 2.3.5 by flightdeck, on this machine.
#
#   scripts/real-milvus.sh              the cockpit on the upgrade (foreground: nothing outlives it)
#   scripts/real-milvus.sh --headless   the same run with --yes, ending with one summary line:
#     real-milvus: 2.2.16 -> 2.3.5; rows 1000 -> 1000; verified (... s)
#   exit 0 only when verified: flightdeck completed, the server answers 2.3.5, and a query
#   returns the same rows as before.
#
# It installs (or reuses) both versions and the client (scripts/milvus-venvs.sh), starts 2.2.16
# on a fresh data directory on free ports, writes a known data set (1000 vectors), writes a
# target for this run from procedures/targets/milvus-standalone.example.toml, and runs
# procedures/milvus-standalone.toml against it. On exit it stops Milvus and removes the run's
# directory (--keep keeps it: data, logs, journal, target).
#
# FLIGHTDECK=path/to/flightdeck uses that binary; else it is built with `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

HEADLESS=0
KEEP=0
for arg in "$@"; do
  case "$arg" in
    --headless) HEADLESS=1 ;;
    --keep) KEEP=1 ;;
    *) echo "usage: scripts/real-milvus.sh [--headless] [--keep]" >&2; exit 2 ;;
  esac
done

FROM=2.2.16
TO=2.3.5
COLLECTION=flightdeck_known
ROWS=1000
say() { echo "real-milvus: $*" >&2; }

CACHE="$(scripts/milvus-venvs.sh)"
CLIENT="$CACHE/client/bin/python"
if [ -z "${FLIGHTDECK:-}" ]; then
  say "building flightdeck (cargo build --release)"
  cargo build --release --quiet
  FLIGHTDECK="$REPO/target/release/flightdeck"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/real-milvus.XXXXXX")"
ROOT="$WORK/install"
mkdir -p "$ROOT"
cleanup() {
  local code=$?
  scripts/milvus-ctl.sh stop "$ROOT" 30 >/dev/null 2>&1 || true
  if [ "$KEEP" = 1 ]; then
    say "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Four free ports (held together so they differ), below the kernel's ephemeral range so no
# outgoing connection takes one meanwhile: gRPC, etcd client, etcd peer, /healthz.
read -r GRPC ETCD PEER METRICS < <(python3 -c '
import random, socket
held = []
for port in random.sample(range(20000, 32000), 200):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    held.append(s)
    if len(held) == 4:
        break
print(*[s.getsockname()[1] for s in held])')

TARGET="$WORK/target.toml"
sed -e "s|^address = .*|address = \"127.0.0.1:$METRICS\"|" \
  -e "s|^tags = .*|tags = { grpc_port = \"$GRPC\", etcd_port = \"$ETCD\", etcd_peer_port = \"$PEER\", root = \"$ROOT\", versions = \"$CACHE\", client = \"$CLIENT\", scripts = \"$REPO/scripts\", backup = \"$WORK/backup\" }|" \
  procedures/targets/milvus-standalone.example.toml >"$TARGET"

data() { "$CLIENT" scripts/milvus_data.py --uri "127.0.0.1:$GRPC" "$@"; }

say "starting Milvus $FROM in $ROOT (gRPC $GRPC, /healthz $METRICS, etcd $ETCD)"
scripts/milvus-ctl.sh switch "$ROOT" "$CACHE/$FROM" >&2
scripts/milvus-ctl.sh start "$ROOT" "$GRPC" "$ETCD" "$PEER" "$METRICS" "$FROM" 240 >&2
data write --collection "$COLLECTION" --rows "$ROWS" >&2
V_BEFORE="$(data version | awk '{print $NF}')"
N_BEFORE="$(data count --collection "$COLLECTION")"
data rows --collection "$COLLECTION" >"$WORK/rows.before"

START=$SECONDS
set +e
if [ "$HEADLESS" = 1 ]; then
  "$FLIGHTDECK" run procedures/milvus-standalone.toml --target "$TARGET" --headless --yes \
    --journal "$WORK/journal.jsonl"
else
  "$FLIGHTDECK" run procedures/milvus-standalone.toml --target "$TARGET" --foreground \
    --journal "$WORK/journal.jsonl"
fi
RUN=$?
set -e
TOOK=$((SECONDS - START))

# What the server says now, not what the session believes.
V_AFTER="$(data version 2>/dev/null | awk '{print $NF}')" || V_AFTER="?"
N_AFTER="$(data count --collection "$COLLECTION" 2>/dev/null)" || N_AFTER="?"
data rows --collection "$COLLECTION" >"$WORK/rows.after" 2>/dev/null || true
WHY=""
[ "$RUN" = 0 ] || WHY="flightdeck exited $RUN"
[ "$V_AFTER" = "$TO" ] || WHY="${WHY:+$WHY, }the server runs $V_AFTER, not $TO"
cmp -s "$WORK/rows.before" "$WORK/rows.after" || WHY="${WHY:+$WHY, }the rows differ"
if [ -z "$WHY" ]; then
  echo "real-milvus: $V_BEFORE -> $V_AFTER; rows $N_BEFORE -> $N_AFTER; verified (${TOOK} s)"
  exit 0
fi
echo "real-milvus: $V_BEFORE -> $V_AFTER; rows $N_BEFORE -> $N_AFTER; NOT verified: $WHY"
exit 1
