"""The `migrate` role: wait until the database answers, then apply the migrations.

The MariaDB and PostgreSQL stacks start it once the database answers (compose
`service_healthy`): their database images carry the schema, so the app is ready without
it, and loading Django here does not slow the database's own start. It still waits for
the database (a new database, or a stack that starts it beside one).
"""
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lab.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import OperationalError, connection  # noqa: E402

WAIT_S = float(os.environ.get("DB_WAIT_S", "120"))


def wait_for_database():
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            connection.ensure_connection()
            return
        except OperationalError as e:
            if time.monotonic() > deadline:
                sys.exit(f"migrate: the database did not answer within {WAIT_S:.0f} s: {e}")
            connection.close()
            time.sleep(0.05)


wait_for_database()
call_command("migrate", interactive=False)
