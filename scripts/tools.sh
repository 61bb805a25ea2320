#!/usr/bin/env bash
# Install the external test tools into a cache outside the clone (reused by later
# runs): schemathesis in a Python virtualenv. Prints the venv's bin directory.
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"
tools="${KEEL_TOOLS_DIR:-$HOME/.cache/keel-tools}"
venv="$tools/venv"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "tools: installing schemathesis $SCHEMATHESIS_VERSION into $venv" >&2
  mkdir -p "$tools"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
fi
echo "$venv/bin"
