#!/usr/bin/env bash
# Install everything and run the whole test suite (lint, migrations check, pytest).
# Uses PostgreSQL and Redis on 127.0.0.1 when they answer; without them those tests skip
# (GIZ_REQUIRE_SERVICES=1 turns the skips into failures, as .ci/run does).
source "$(dirname "$0")/lib.sh"
ensure_venv dev

if ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing Debian's chromium for the browser tests"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi

if [ -z "${DATABASE_URL:-}" ] && port_open 127.0.0.1 5432; then
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/giz"
fi
if [ -z "${GIZ_TEST_BROKER_URL:-}" ] && port_open 127.0.0.1 6379; then
  export GIZ_TEST_BROKER_URL="redis://127.0.0.1:6379/15"
fi
echo "==> database: ${DATABASE_URL:-SQLite}; test broker: ${GIZ_TEST_BROKER_URL:-in-memory}"

echo "==> ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check --quiet .

echo "==> migrations match the models"
DJANGO_SETTINGS_MODULE=giz_site.settings.test "$VENV/bin/python" manage.py makemigrations --check --dry-run

echo "==> pytest"
exec "$VENV/bin/python" -m pytest "$@"
