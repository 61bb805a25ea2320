#!/usr/bin/env bash
# The whole test suite: unit and integration tests (real HTTP, SQLite and
# PostgreSQL), then schemathesis against the served example. Fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
scripts/tools.sh >/dev/null
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
scripts/schemathesis.sh
