ARG BASE_IMAGE=debian:trixie-slim
FROM ${BASE_IMAGE}

# Debian's packages instead of pip (passwd: useradd, absent from minimal images).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        python3-flask python3-sqlalchemy python3-psycopg2 gunicorn passwd \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --system --no-create-home --shell /usr/sbin/nologin app

WORKDIR /srv/app
COPY . /srv/app

USER app
ENV PYTHONUNBUFFERED=1
EXPOSE 8000
# Gunicorn reads the worker count from WEB_CONCURRENCY (default 1).
# --preload: the master imports app.py once (waits for the DB, creates tables).
CMD ["gunicorn", "--preload", "--bind", "0.0.0.0:8000", "--access-logfile", "-", "app:app"]
