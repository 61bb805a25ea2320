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

# NATS JetStream (events), RabbitMQ (events) and Redis (shared limits): the same
# check, then the machine's own start command, then a loud failure.
port_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ensure() {
  local name="$1" port="$2"; shift 2
  if ! port_up "$port"; then
    echo "services: $name is not answering on 127.0.0.1:$port; starting it" >&2
    "$@" >/dev/null 2>&1 || true
    for _ in $(seq 1 150); do port_up "$port" && break; sleep 0.2; done
  fi
  if ! port_up "$port"; then
    echo "services: ERROR: $name is required at 127.0.0.1:$port for the tests." >&2
    exit 1
  fi
  echo "services: $name ok"
}
ensure "NATS JetStream" 4222 start-stop-daemon --start --oknodo --background \
  --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server \
  -l /var/log/nats-server.log
ensure "RabbitMQ" 5672 rabbitmq-server -detached
ensure "Redis" 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
  --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
