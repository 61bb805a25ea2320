#!/usr/bin/env bash
# Keel's many-nodes benchmark (issue 12), one command:
#
#   bench/nodes.sh                    # cache on/off, Redis limits vs in process, 1 vs 3 nodes
#   bench/nodes.sh --parts cache      # one part
#   bench/nodes.sh --smoke            # seconds, tiny, debug build; checks no request fails
#   bench/nodes.sh --help             # every option
#
# Builds the release binary, installs wrk (Debian) when missing, uses PostgreSQL at
# 127.0.0.1:5432 (BENCH_PG_URL overrides) and Redis at 127.0.0.1:6379 (BENCH_REDIS_URL),
# then runs bench/nodes.py. Results go to bench/results/<date>-nodes-<machine>/ (smoke:
# a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then
    exec python3 bench/nodes.py --help
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
echo "bench: building the $profile binary into $target" >&2
if [ "$profile" = release ]; then
  cargo build --release --quiet -p keel >&2
else
  cargo build --quiet -p keel >&2
fi

exec python3 bench/nodes.py --keel "$target/$profile/keel" --wrk "$(command -v wrk)" "$@"
