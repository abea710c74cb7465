#!/usr/bin/env bash
# Install (or reuse) what the real-Milvus run needs, each in its own virtual environment under
# one cache directory that survives between runs on the same machine:
#   $CACHE/2.2.16  the PyPI package `milvus` 2.2.16 ("embedded Milvus": a real standalone binary
#                  with embedded etcd and local storage)
#   $CACHE/2.3.5   the same package at 2.3.5 (the two conflict, hence one venv each)
#   $CACHE/client  pymilvus 2.2.17 for the data checks (it talks to both servers; it needs
#                  marshmallow < 3.20 and environs < 10, which later releases broke)
# An environment is used only once its `.ok` marker exists, so an interrupted install is redone.
# Prints the cache directory. FLIGHTDECK_MILVUS_CACHE overrides where it lives.
set -euo pipefail

CACHE="${FLIGHTDECK_MILVUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flightdeck/milvus}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$CACHE"

venv() { # NAME PACKAGE...
  local dir="$CACHE/$1"
  shift
  if [ -f "$dir/.ok" ]; then
    return 0
  fi
  rm -rf "$dir"
  echo "installing $* into $dir" >&2
  "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
    --cache-dir "$CACHE/pip" "$@" >&2
  touch "$dir/.ok"
}

venv 2.2.16 "milvus==2.2.16"
venv 2.3.5 "milvus==2.3.5"
venv client "pymilvus==2.2.17" "marshmallow<3.20" "environs<10"
echo "$CACHE"
