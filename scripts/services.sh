#!/usr/bin/env bash
# Make sure the services the tests talk to are up; start them if they are installed
# but stopped; fail loudly (never skip) when one cannot be reached.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

if ! pg_up; then
  echo "services: PostgreSQL is not answering on 127.0.0.1:5432; starting it" >&2
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for v in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    done
  fi
  for _ in $(seq 1 50); do pg_up && break; sleep 0.2; done
fi
if ! pg_up; then
  echo "services: ERROR: PostgreSQL is required at 127.0.0.1:5432 (trust auth, user postgres)." >&2
  echo "          Install it (apt-get install postgresql) or point KEEL_TEST_POSTGRES at one." >&2
  exit 1
fi
echo "services: PostgreSQL ok"
