"""Settings of the race-condition lab, all from the environment."""
import os
import secrets

SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["demo"]
# No session, auth or CSRF middleware: the API is form POSTs from a load generator.
MIDDLEWARE = ["demo.middleware.inflight"]
ROOT_URLCONF = "lab.urls"
WSGI_APPLICATION = "lab.wsgi.application"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

ENGINE = os.environ.get("DB_ENGINE", "mysql")
ISOLATION = os.environ.get("DB_ISOLATION", "read_committed")
ISOLATIONS = ("read_committed", "repeatable_read", "serializable")
if ISOLATION not in ISOLATIONS:
    raise SystemExit(f"DB_ISOLATION={ISOLATION!r}: expected one of {', '.join(ISOLATIONS)}")

if ENGINE == "mysql":
    # Django's MySQL backend defaults to READ COMMITTED, not the server's REPEATABLE READ.
    OPTIONS = {"isolation_level": ISOLATION.replace("_", " "), "charset": "utf8mb4"}
    BACKEND = "django.db.backends.mysql"
elif ENGINE == "postgres":
    import psycopg2.extensions as pg

    OPTIONS = {
        "isolation_level": {
            "read_committed": pg.ISOLATION_LEVEL_READ_COMMITTED,
            "repeatable_read": pg.ISOLATION_LEVEL_REPEATABLE_READ,
            "serializable": pg.ISOLATION_LEVEL_SERIALIZABLE,
        }[ISOLATION]
    }
    BACKEND = "django.db.backends.postgresql"
elif ENGINE == "sqlite":
    # Django's SQLite backend, plus BEGIN IMMEDIATE on request (lab/sqlite/base.py).
    # DB_NAME is the database file; a writer waits up to `timeout` seconds for the lock,
    # then fails with "database is locked". DB_ISOLATION does not apply (serializable).
    OPTIONS = {"timeout": 20}
    BACKEND = "lab.sqlite"
else:
    raise SystemExit(f"DB_ENGINE={ENGINE!r}: expected mysql, postgres or sqlite")

# Each worker thread keeps its database connection across requests unless
# DB_CONN_MAX_AGE says otherwise (seconds; "0" opens one per request, Django's default).
# A request then reaches its first query without a TCP connect, a server-side fork
# (PostgreSQL) and a SCRAM exchange; the health check replaces a connection that a
# recreated database broke.
# ATOMIC_REQUESTS (seed 003): every view in one transaction, committed when it returns.
# It changes every endpoint: the non-atomic ones become atomic as a whole.
_atomic = os.environ.get("DB_ATOMIC_REQUESTS", "") or "false"
if _atomic not in ("true", "false"):
    raise SystemExit(f"DB_ATOMIC_REQUESTS={_atomic!r}: expected true or false")
ATOMIC_REQUESTS = _atomic == "true"

_age = os.environ.get("DB_CONN_MAX_AGE", "")
CONN_MAX_AGE = None if _age in ("", "none") else int(_age)

DATABASES = {
    "default": {
        "ENGINE": BACKEND,
        "HOST": os.environ.get("DB_HOST", "db"),
        "PORT": os.environ.get("DB_PORT", ""),
        "NAME": os.environ.get("DB_NAME", "racy"),
        "USER": os.environ.get("DB_USER", "racy"),
        "PASSWORD": os.environ.get("DB_PASSWORD", "racy"),
        "OPTIONS": OPTIONS,
        "CONN_MAX_AGE": CONN_MAX_AGE,
        "CONN_HEALTH_CHECKS": True,
        "ATOMIC_REQUESTS": ATOMIC_REQUESTS,
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}

# Celery (lab/celery.py) and the Redis locks and counters of demo/ use this Redis.
REDIS_URL = os.environ.get("REDIS_URL", "")
