#!/usr/bin/env bash
# Install everything and start the whole site on the embedded default (SQLite, filesystem broker):
# web server, Celery worker, Celery beat, and the loopback stand-in for the SDSS cutout service.
# Ctrl-C stops them all. Data lives in ./var (GIZ_DATA_DIR).
source "$(dirname "$0")/lib.sh"
ensure_venv base

PORT="${PORT:-8000}"
STANDIN_PORT="${GIZ_STANDIN_PORT:-8765}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-giz_site.settings.local}"
# No internet here: unless told otherwise, SDSS requests go to the stand-in on loopback.
export GIZ_SDSS_CUTOUT_BASE_URL="${GIZ_SDSS_CUTOUT_BASE_URL:-http://127.0.0.1:$STANDIN_PORT}"
export GIZ_SDSS_FRAMES_BASE_URL="${GIZ_SDSS_FRAMES_BASE_URL:-http://127.0.0.1:$STANDIN_PORT/sas}"
# HiPS surveys (Legacy Surveys, Pan-STARRS, DSS) from the stand-in's hips2fits too, so the demo needs no network.
export GIZ_HIPS2FITS_URL="${GIZ_HIPS2FITS_URL:-http://127.0.0.1:$STANDIN_PORT/hips2fits}"
PY="$VENV/bin/python"
DATA_DIR="${GIZ_DATA_DIR:-$REPO/var}"
LOG="$DATA_DIR/log"
mkdir -p "$LOG"

echo "==> database and static files"
"$PY" manage.py migrate --noinput
"$PY" manage.py collectstatic --noinput >/dev/null

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo "==> stopping"
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

echo "==> SDSS stand-in on 127.0.0.1:$STANDIN_PORT (log: $LOG/standin.log)"
"$PY" manage.py sdss_standin --port "$STANDIN_PORT" >$LOG/standin.log 2>&1 &
pids+=($!)

echo "==> shipped ensemble (inference/shipped/, checked against its manifest)"
"$PY" manage.py activate_shipped --if-empty

echo "==> demo data and models (first run: a few minutes)"
"$PY" manage.py seed_demo

echo "==> Celery worker and beat (logs: $LOG/worker.log, $LOG/beat.log)"
# Without -Q the worker consumes all four queues (acquisition, inference, training, maintenance); see
# docs/DEPLOY.md for one worker per queue.
"$VENV/bin/celery" -A giz_site worker --loglevel=INFO --concurrency=2 --without-mingle --without-gossip \
  >$LOG/worker.log 2>&1 &
pids+=($!)
"$VENV/bin/celery" -A giz_site beat --loglevel=INFO >$LOG/beat.log 2>&1 &
pids+=($!)

echo "==> web server (log: $LOG/web.log)"
"$VENV/bin/gunicorn" -c giz_site/gunicorn.conf.py --bind "127.0.0.1:$PORT" giz_site.wsgi \
  >$LOG/web.log 2>&1 &
pids+=($!)

for _ in $(seq 1 120); do
  port_open 127.0.0.1 "$PORT" && break
  sleep 1
done
echo
echo "Galaxy Inclination Zoo is running at http://127.0.0.1:$PORT/  (admin: http://127.0.0.1:$PORT/admin/)"
cat "$DATA_DIR/demo-logins.txt"
echo "Press Ctrl-C to stop."
wait -n "${pids[@]}"
echo "a process stopped; see $LOG/" >&2
