#!/bin/sh
# The lab's roles, by first argument:
#   migrate     wait for the database, apply the migrations and exit
#   startup     seed 000: wait as START_WAIT says, migrate, record the outcome (see
#               lab/startup.py), then the lab under Gunicorn as below
#   celery      the Celery worker of the task endpoints (extra arguments go to it)
#   sqlite-db   migrate the SQLite file DB_NAME, mark /data/.migrated, then idle (the
#               stack's `db` service, where the driver execs sqlite3)
#   anything else: the lab under Gunicorn sync workers; the arguments go to Gunicorn.
set -e
cd /app
case "$1" in
  migrate)
    exec python3 -m lab.migrate ;;
  startup)
    shift
    python3 -m lab.startup ;;
  celery)
    shift
    rm -f /tmp/celery-ready
    python3 -m lab.wait_redis
    exec python3 -m celery -A lab.celery worker --loglevel=WARNING --pool=prefork \
      --concurrency=4 --without-gossip --without-mingle --without-heartbeat "$@" ;;
  sqlite-db)
    rm -f /data/.migrated
    python3 manage.py migrate --noinput
    touch /data/.migrated
    trap 'exit 0' TERM INT
    sleep infinity &
    wait ;;
esac
exec gunicorn lab.wsgi:application --config python:lab.gunicorn_conf --bind 0.0.0.0:8000 \
  --worker-class sync --pid /tmp/gunicorn.pid --timeout 120 --graceful-timeout 5 \
  --access-logfile - --error-logfile - "$@"
