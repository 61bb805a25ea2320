#!/usr/bin/env bash
# The whole test suite: unit and integration tests (real HTTP, SQLite and
# PostgreSQL), then schemathesis against the served example. Fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
# The validators keel-design's tests run (they fail, never skip, without these).
KEEL_TOOLS_BIN="$(scripts/tools.sh)"
KEEL_NODE_DIR="${KEEL_TOOLS_DIR:-$HOME/.cache/keel-tools}/node"
# The OpenID provider the OAuth tests start (installed by tools.sh from tests/oidc).
KEEL_OIDC_DIR="${KEEL_TOOLS_DIR:-$HOME/.cache/keel-tools}/oidc"
# The browser-compatible EventSource the realtime tests drive (tools.sh, tests/realtime).
KEEL_REALTIME_DIR="${KEEL_TOOLS_DIR:-$HOME/.cache/keel-tools}/realtime"
export KEEL_TOOLS_BIN KEEL_NODE_DIR KEEL_OIDC_DIR KEEL_REALTIME_DIR
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
scripts/schemathesis.sh
bench/run.sh --smoke   # the benchmark harness in seconds on small data (no speed asserted), so it never rots
bench/realtime.sh --smoke   # the realtime benchmark likewise: every delivery must arrive
bench/nodes.sh --smoke   # the many-nodes benchmark likewise: cache, Redis limits, three nodes; no request may fail
