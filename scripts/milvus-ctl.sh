#!/usr/bin/env bash
# Host operations on a Milvus standalone from the PyPI package `milvus` (embedded etcd, local
# storage), for procedures/milvus-standalone.toml through its target
# (procedures/targets/milvus-standalone.example.toml). One install lives in ROOT:
#   ROOT/current       symlink to the venv of the version that runs (like /opt/milvus/current)
#   ROOT/milvus        the server's base directory (`--data`): data/ (etcd, RocksMQ, segments),
#                      configs/ (written at each start), logs/, bin/ (unpacked from the package)
#   ROOT/milvus.pid    the launcher's pid (scripts/milvus_server.py, in its own session)
#   ROOT/launcher.log  what the launcher said; Milvus's own logs are in ROOT/milvus/logs
#
#   milvus-ctl.sh start   ROOT PROXY_PORT ETCD_PORT ETCD_PEER_PORT METRICS_PORT VERSION [DEADLINE_SECS]
#   milvus-ctl.sh stop    ROOT [DEADLINE_SECS]
#   milvus-ctl.sh switch  ROOT VENV
#   milvus-ctl.sh backup  ROOT DEST
#   milvus-ctl.sh check-backup ROOT DEST
#   milvus-ctl.sh restore ROOT DEST
#
# Each prints what it did and exits non-zero with the failing tool's (or Milvus's) own words.
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"

die() {
  echo "$*"
  exit 1
}

pid_of() { # ROOT -> the launcher's pid when it runs
  local pid
  pid="$(cat "$1/milvus.pid" 2>/dev/null)" || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

healthz() { # PORT -> 0 when /healthz says OK (internal/http/healthz/healthz_handler.go)
  [ "$(curl -s -m 2 "http://127.0.0.1:$1/healthz" 2>/dev/null)" = "OK" ]
}

cmd_start() {
  local root="$1" proxy="$2" etcd="$3" peer="$4" metrics="$5" version="$6" deadline="${7:-180}"
  local py="$root/current/bin/python" pid installed
  if pid="$(pid_of "$root")"; then
    die "milvus already runs in $root (launcher pid $pid)"
  fi
  [ -x "$py" ] || die "no Milvus install at $root/current ($(readlink "$root/current" || echo 'no such link'))"
  installed="$("$py" -c 'import milvus; print(milvus.__version__)')" || exit 1
  [ "$installed" = "$version" ] || die "$root/current is milvus $installed, not $version"
  mkdir -p "$root/milvus" || exit 1
  # setsid: the server outlives this action (its own session and process group); `stop` ends it.
  setsid "$py" "$HERE/milvus_server.py" --data "$root/milvus" --proxy-port "$proxy" \
    --etcd-port "$etcd" --etcd-peer-port "$peer" --metrics-port "$metrics" >"$root/launcher.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$root/milvus.pid"
  echo "started $(readlink "$root/current") (launcher pid $pid); waiting for /healthz on $metrics"
  local start=$SECONDS
  while [ $((SECONDS - start)) -lt "$deadline" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      # The launcher ends only when Milvus did: its log carries Milvus's last words.
      rm -f "$root/milvus.pid"
      echo "milvus exited before it was healthy:"
      grep -v '^launcher: milvus .* pid' "$root/launcher.log"
      exit 1
    fi
    if healthz "$metrics"; then
      grep '^launcher: milvus .* pid' "$root/launcher.log"
      echo "healthy after $((SECONDS - start)) s"
      return 0
    fi
    sleep 0.5
  done
  tail -n 5 "$root/launcher.log"
  die "not healthy within $deadline s; still running (launcher pid $pid): stop it or wait"
}

cmd_stop() {
  local root="$1" deadline="${2:-60}" pid
  if ! pid="$(pid_of "$root")"; then
    rm -f "$root/milvus.pid"
    echo "milvus is not running in $root"
    return 0
  fi
  local start=$SECONDS
  # The launcher forwards SIGTERM to Milvus and reports how it ended.
  kill -TERM "$pid"
  while [ $((SECONDS - start)) -lt "$deadline" ]; do
    if ! pgrep -g "$pid" >/dev/null 2>&1; then
      grep -v '^launcher: milvus .* pid' "$root/launcher.log" | tail -n 3
      rm -f "$root/milvus.pid"
      echo "stopped in $((SECONDS - start)) s"
      return 0
    fi
    sleep 0.5
  done
  kill -KILL -- "-$pid" 2>/dev/null
  rm -f "$root/milvus.pid"
  echo "milvus did not stop within $deadline s: killed its process group"
}

cmd_switch() {
  local root="$1" venv="$2" was
  [ -x "$venv/bin/python" ] || die "$venv: no Milvus installed there (scripts/milvus-venvs.sh)"
  if pid="$(pid_of "$root")"; then
    die "milvus still runs in $root (launcher pid $pid): stop it first"
  fi
  was="$(readlink "$root/current" || echo none)"
  ln -sfn "$venv" "$root/current" || exit 1
  echo "$root/current: $was -> $venv ($("$venv/bin/python" -c 'import milvus; print("milvus", milvus.__version__)'))"
}

cmd_backup() {
  local root="$1" dest="$2" pid
  if pid="$(pid_of "$root")"; then
    die "milvus still runs in $root (launcher pid $pid): a copy of a live etcd and RocksMQ is not a backup"
  fi
  [ -d "$root/milvus/data" ] || die "no data directory at $root/milvus/data"
  mkdir -p "$dest" || exit 1
  [ ! -e "$dest/data" ] || die "$dest/data already exists: refusing to overwrite an earlier backup"
  cp -a "$root/milvus/data" "$dest/data" || exit 1
  echo "backed up $root/milvus/data to $dest/data: $(du -sh "$dest/data" | cut -f1), $(find "$dest/data" -type f | wc -l) files"
}

cmd_check_backup() {
  local root="$1" dest="$2"
  ls -d "$dest/data" >/dev/null || exit 1
  # Same files, same contents as the stopped data directory.
  diff -rq "$root/milvus/data" "$dest/data" || die "the backup differs from $root/milvus/data"
  echo "$dest/data matches $root/milvus/data ($(find "$dest/data" -type f | wc -l) files)"
}

cmd_restore() {
  local root="$1" dest="$2" pid aside
  if pid="$(pid_of "$root")"; then
    die "milvus still runs in $root (launcher pid $pid): stop it first"
  fi
  # Check the backup before touching anything: without it the data stays as it is.
  ls -d "$dest/data" >/dev/null || die "nothing restored: the backup is missing"
  aside="$root/milvus/data.before-restore.$(date +%Y%m%d%H%M%S)"
  if [ -e "$root/milvus/data" ]; then
    mv "$root/milvus/data" "$aside" || exit 1
    echo "kept the data directory as it was in $aside"
  fi
  cp -a "$dest/data" "$root/milvus/data" || exit 1
  echo "restored $root/milvus/data from $dest/data ($(find "$root/milvus/data" -type f | wc -l) files)"
}

cmd="${1:-}"
shift || true
case "$cmd" in
  start) [ $# -ge 6 ] || die "usage: milvus-ctl.sh start ROOT PROXY_PORT ETCD_PORT ETCD_PEER_PORT METRICS_PORT VERSION [DEADLINE_SECS]"; cmd_start "$@" ;;
  stop) [ $# -ge 1 ] || die "usage: milvus-ctl.sh stop ROOT [DEADLINE_SECS]"; cmd_stop "$@" ;;
  switch) [ $# -eq 2 ] || die "usage: milvus-ctl.sh switch ROOT VENV"; cmd_switch "$@" ;;
  backup) [ $# -eq 2 ] || die "usage: milvus-ctl.sh backup ROOT DEST"; cmd_backup "$@" ;;
  check-backup) [ $# -eq 2 ] || die "usage: milvus-ctl.sh check-backup ROOT DEST"; cmd_check_backup "$@" ;;
  restore) [ $# -eq 2 ] || die "usage: milvus-ctl.sh restore ROOT DEST"; cmd_restore "$@" ;;
  *) die "usage: milvus-ctl.sh start|stop|switch|backup|check-backup|restore ROOT ..." ;;
esac
