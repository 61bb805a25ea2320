#!/usr/bin/env bash
# Keel's events benchmark (issue 10), one command:
#
#   bench/events.sh                          # SQLite: events off vs on, relay drain, latency
#   bench/events.sh --backends sqlite,postgres
#   bench/events.sh --smoke                  # seconds, tiny, debug build; checks every event arrives
#   bench/events.sh --help                   # every option
#
# Builds the release binaries (keel, and keel-bench-receiver from bench/ceiling), installs
# wrk (Debian) when missing, uses PostgreSQL at 127.0.0.1:5432 (BENCH_PG_URL overrides) for
# --backends postgres, then runs bench/events.py. Results go to
# bench/results/<date>-events-<machine>/ (smoke: a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then
    exec python3 bench/events.py --help
  fi
done

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: installing wrk" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 && apt-get install -y -qq wrk >&2
  else sudo apt-get update -qq >&2 && sudo apt-get install -y -qq wrk >&2; fi
fi

target="${CARGO_TARGET_DIR:-target}"
profile=release
for arg in "$@"; do [ "$arg" = "--smoke" ] && profile=debug; done
echo "bench: building $profile binaries into $target" >&2
if [ "$profile" = release ]; then
  cargo build --release --quiet -p keel -p keel-bench-ceiling >&2
else
  cargo build --quiet -p keel -p keel-bench-ceiling >&2
fi

exec python3 bench/events.py \
  --keel "$target/$profile/keel" \
  --receiver "$target/$profile/keel-bench-receiver" \
  --wrk "$(command -v wrk)" \
  "$@"
