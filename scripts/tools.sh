#!/usr/bin/env bash
# Install the external test tools into a cache outside the clone (reused by later
# runs): schemathesis, openapi-spec-validator, PyYAML and standardwebhooks in a Python
# virtualenv, the Mermaid parser (mermaid + jsdom) under $tools/node, the OpenID
# provider under $tools/oidc and npm eventsource, graphql-ws, graphql and graphql-http under $tools/realtime. Prints the
# venv's bin directory.
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"
OPENAPI_SPEC_VALIDATOR_VERSION="0.7.2"
PYYAML_VERSION="6.0.3"
STANDARDWEBHOOKS_VERSION="1.1.0"
MERMAID_VERSION="11.17.2"
JSDOM_VERSION="26"
tools="${KEEL_TOOLS_DIR:-$HOME/.cache/keel-tools}"
venv="$tools/venv"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "tools: installing schemathesis $SCHEMATHESIS_VERSION into $venv" >&2
  mkdir -p "$tools"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
fi
# For keel-design's tests: OpenAPI 3.1 validation, YAML, JSON Schema.
if ! "$venv/bin/python" -c "import openapi_spec_validator, yaml, jsonschema" 2>/dev/null; then
  echo "tools: installing openapi-spec-validator and PyYAML into $venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION" "PyYAML==$PYYAML_VERSION" >&2
fi
# For keel-events' tests: the Standard Webhooks reference verifier, an independent
# check of the signatures Keel's webhooks carry.
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('standardwebhooks') != '$STANDARDWEBHOOKS_VERSION')" 2>/dev/null; then
  echo "tools: installing standardwebhooks $STANDARDWEBHOOKS_VERSION into $venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "standardwebhooks==$STANDARDWEBHOOKS_VERSION" >&2
fi
# The Mermaid parser, run in Node with a jsdom window (tests copy their script here).
node_dir="$tools/node"
if ! [ -f "$node_dir/node_modules/mermaid/package.json" ] \
  || ! grep -q "\"version\": \"$MERMAID_VERSION\"" "$node_dir/node_modules/mermaid/package.json" \
  || ! [ -d "$node_dir/node_modules/jsdom" ]; then
  echo "tools: installing mermaid $MERMAID_VERSION and jsdom into $node_dir" >&2
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --no-audit --no-fund --silent \
    "mermaid@$MERMAID_VERSION" "jsdom@$JSDOM_VERSION" >&2
fi
# A real OpenID provider for the OAuth tests (tests/oidc: pinned package.json and lock).
oidc_dir="$tools/oidc"
oidc_src="$(cd "$(dirname "$0")/../tests/oidc" && pwd)"
if ! cmp -s "$oidc_src/package-lock.json" "$oidc_dir/package-lock.json" \
  || ! [ -f "$oidc_dir/node_modules/oidc-provider/package.json" ]; then
  echo "tools: installing oidc-provider (tests/oidc) into $oidc_dir" >&2
  mkdir -p "$oidc_dir"
  cp "$oidc_src/package.json" "$oidc_src/package-lock.json" "$oidc_dir/"
  npm ci --prefix "$oidc_dir" --no-audit --no-fund --silent >&2
fi
# Real clients for the realtime tests: a browser-compatible EventSource (npm
# eventsource), the graphql-ws client over ws, graphql-js and graphql-http's audit (tests/realtime:
# pinned package.json and lock; Node 20 or newer).
realtime_dir="$tools/realtime"
realtime_src="$(cd "$(dirname "$0")/../tests/realtime" && pwd)"
if ! cmp -s "$realtime_src/package-lock.json" "$realtime_dir/package-lock.json" \
  || ! [ -f "$realtime_dir/node_modules/graphql-http/package.json" ]; then
  echo "tools: installing eventsource, graphql-ws, graphql and graphql-http (tests/realtime) into $realtime_dir" >&2
  mkdir -p "$realtime_dir"
  cp "$realtime_src/package.json" "$realtime_src/package-lock.json" "$realtime_dir/"
  npm ci --prefix "$realtime_dir" --no-audit --no-fund --silent >&2
fi
echo "$venv/bin"
