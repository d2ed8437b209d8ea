"""The `startup` role (seed 000): the app applies its migrations when it starts, as the
article's web service does, after waiting for the database as START_WAIT says:

  none   no wait: compose's `depends_on` alone, which starts the app once the database's
         container has started, not once the database answers
  port   the article's check_db.py: connect to the database's port until it opens,
         START_POLL_MS between tries (3000, the article's)
  query  until the database answers `SELECT 1` as the app's user, every 100 ms (what
         racy-matrix itself waits for)

Whether `migrate` then succeeded is this start's outcome. The article's app would exit on
a failure; this one records the outcome and serves anyway, so that the driver can count
it: it waits until the database answers (whatever START_WAIT said), creates the table
racy_start, keeps the outcome in /tmp/start-outcome.json, and POST /start_outcome/ adds
it to racy_start as one row.
"""
import json
import os
import socket
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lab.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import Error, OperationalError, connection  # noqa: E402

OUTCOME = "/tmp/start-outcome.json"
WAITS = ("none", "port", "query")
WAIT = os.environ.get("START_WAIT", "none")
POLL_S = int(os.environ.get("START_POLL_MS", "3000")) / 1000.0
DEADLINE_S = float(os.environ.get("DB_WAIT_S", "120"))


def say(message):
    print(f"startup: {message}", file=sys.stderr, flush=True)


def database_address():
    db = settings.DATABASES["default"]
    default = {"mysql": 3306, "postgresql": 5432}[connection.vendor]
    return db["HOST"], int(db["PORT"] or default)


def wait_for_port():
    """The article's loop: connect_ex until the port accepts a connection."""
    address = database_address()
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            try:
                if sock.connect_ex(address) == 0:
                    say(f"{address[0]} port {address[1]} is open")
                    return
            except OSError:
                pass  # the name does not resolve yet: as closed
        say(f"{address[0]} port {address[1]} is not open; again in {POLL_S:g} s")
        time.sleep(POLL_S)


def wait_for_query(poll_s=0.1):
    """Until the database answers a query as the app's user (or the deadline)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except Error:
            connection.close()
            if time.monotonic() > deadline:
                return False
            time.sleep(poll_s)


def migrate():
    """Apply the migrations: None when they applied, else the error's first line."""
    started = time.monotonic()
    try:
        call_command("migrate", interactive=False, verbosity=0)
        say(f"migrate applied in {time.monotonic() - started:.2f} s")
        return None
    except Exception as e:  # noqa: BLE001 - any failure of the start is its outcome
        error = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        say(f"migrate failed: {error}")
        return error
    finally:
        connection.close()


def record(outcome):
    """racy_start exists (empty) once the database answers; the outcome waits in a file."""
    if not wait_for_query():
        say("the database never answered: the outcome cannot be recorded")
        sys.exit(1)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS racy_start (failed INTEGER NOT NULL, error TEXT)")
    connection.close()
    with open(OUTCOME, "w") as f:
        json.dump(outcome, f)


def main():
    if WAIT not in WAITS:
        sys.exit(f"START_WAIT={WAIT!r}: expected one of {', '.join(WAITS)}")
    began = time.monotonic()
    if WAIT == "port":
        wait_for_port()
    elif WAIT == "query":
        wait_for_query()
        connection.close()
    waited = time.monotonic() - began
    error = migrate()
    record({"wait": WAIT, "waited_s": round(waited, 3), "failed": error is not None, "error": error})


try:
    main()
except OperationalError as e:
    sys.exit(f"startup: {e}")
