#!/bin/sh
# Migrate, then serve the lab with Gunicorn sync workers; extra arguments go to Gunicorn.
set -e
cd /app
python3 manage.py migrate --noinput
exec gunicorn lab.wsgi:application --bind 0.0.0.0:8000 --worker-class sync \
  --timeout 120 --graceful-timeout 5 --access-logfile - --error-logfile - "$@"
