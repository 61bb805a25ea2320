#!/usr/bin/env bash
# Serve every template (examples/*/keel.toml) and run schemathesis against its OpenAPI
# document with all checks (including stateful links), then against /graphql in GraphQL
# mode, on SQLite and on PostgreSQL.
# Any failure fails. `SCHEMATHESIS_TEMPLATES="shop"` narrows the run.
# Also checks that SIGTERM stops the server gracefully with exit status 0.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="$(scripts/tools.sh)"
keel="${CARGO_TARGET_DIR:-target}/debug/keel"
cargo build --quiet -p keel
examples="${SCHEMATHESIS_EXAMPLES:-40}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "${pgdb:-}" ]; then psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A template, with its rate limits raised so thousands of generated requests are
# tested rather than answered 429 (the limits themselves are tested in the Rust suite).
prepare() {
  local template="$1"
  sed -E -e 's#= "[0-9]+/(s|sec|min|h|hour|d|day)"#= "1000000/min"#' \
    -e 's#^\[limits\]$#[limits]\n"POST /v1/auth/signup" = "1000000/min"\n"POST /v1/auth/login" = "1000000/min"#' \
    "examples/$template/keel.toml" > "$work/keel.toml"
  if ! grep -q '^\[limits\]' "$work/keel.toml"; then
    printf '\n[limits]\n"POST /v1/auth/signup" = "1000000/min"\n"POST /v1/auth/login" = "1000000/min"\n' >> "$work/keel.toml"
  fi
}

run_against() {
  local name="$1" url="$2"
  local port; port="$(free_port)"
  "$keel" serve "$work/keel.toml" --database "$url" --addr "127.0.0.1:$port" >"$work/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/$name.log" >&2; echo "schemathesis: keel serve exited early" >&2; exit 1; }
    sleep 0.1
  done
  # Test as a signed-in user: rules that need `auth.id` are exercised too.
  local token
  token="$(curl -fsS "http://127.0.0.1:$port/v1/auth/signup" -H 'content-type: application/json' \
    -d '{"email": "schemathesis@example.com", "password": "schemathesis password"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
  echo "schemathesis: $name on port $port, signed in"
  if ! (cd tests/schemathesis && SCHEMATHESIS_HOOKS=hooks PYTHONPATH=. "$bin/schemathesis" run \
      "http://127.0.0.1:$port/v1/openapi.json" --checks all --max-examples "$examples" \
      -H "Authorization: Bearer $token" --seed 1 --no-color); then
    echo "schemathesis: FAILED on $name; server errors:" >&2
    grep -E "ERROR|WARN" "$work/$name.log" >&2 || true
    exit 1
  fi
  # GraphQL mode on /graphql (its schema by introspection): never a 5xx, every error
  # carries one of Keel's client-side codes, answers conform to the schema.
  if ! (cd tests/schemathesis && SCHEMATHESIS_HOOKS=hooks PYTHONPATH=. "$bin/schemathesis" run \
      "http://127.0.0.1:$port/graphql" --checks keel_never_fails_inside,response_schema_conformance \
      --max-examples "$examples" -H "Authorization: Bearer $token" --seed 1 --no-color); then
    echo "schemathesis: GraphQL FAILED on $name; server errors:" >&2
    grep -E "ERROR|WARN" "$work/$name.log" >&2 || true
    exit 1
  fi
  kill -TERM "$pid"
  local status=0
  wait "$pid" || status=$?
  if [ "$status" -ne 0 ]; then
    cat "$work/$name.log" >&2
    echo "schemathesis: keel serve did not exit 0 on SIGTERM (status $status)" >&2
    exit 1
  fi
  grep -q "shutting down" "$work/$name.log" || { echo "schemathesis: no graceful shutdown logged" >&2; exit 1; }
}

for template in ${SCHEMATHESIS_TEMPLATES:-social shop saas}; do
  prepare "$template"
  run_against "$template-sqlite" "sqlite://$work/$template.db"
  pgdb="keel_st_$$_$template"
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $pgdb" >/dev/null
  run_against "$template-postgres" "postgres://postgres@127.0.0.1:5432/$pgdb"
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null
  pgdb=""
done
echo "schemathesis: all checks passed on every template, on SQLite and PostgreSQL"
