#!/usr/bin/env bash
# Run this app's generator with its pinned dependencies installed OUTSIDE this directory.
#   ./run.sh gen.mjs --seed 1 --events 300 --out out/small
# Node resolves bare imports relative to the script file, so the scripts are copied into $LSGEN_WORKDIR
# (default /tmp/livestore-gen-work-readinglist, where `npm ci` installs node_modules) and run from the caller's cwd,
# so a relative --out is relative to where you call run.sh from.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="${LSGEN_WORKDIR:-${TMPDIR:-/tmp}/livestore-gen-work-readinglist}"
mkdir -p "$WORK"
cp "$HERE"/package.json "$HERE"/package-lock.json "$HERE"/*.mjs "$WORK"/
if [ ! -d "$WORK/node_modules/@livestore/adapter-node" ] || ! cmp -s "$HERE/package-lock.json" "$WORK/.installed-lock"; then
  (cd "$WORK" && npm ci --no-audit --no-fund >&2)
  cp "$HERE/package-lock.json" "$WORK/.installed-lock"
fi
script="${1:?usage: run.sh gen.mjs [args...]}"
shift
exec node "$WORK/$script" "$@"
