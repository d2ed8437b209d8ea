"""What every endpoint of the lab shares: POST only, the form fields, the timestamps, and
the JSON it answers with.

A view made by `view()` answers 405 to anything but POST, takes `t_start`, parses the form
(400 on bad input), then runs the endpoint's body with a `Call`. A body answers through
`Call.respond` (200); what goes wrong becomes JSON here, in one place:
- Account.DoesNotExist, or another model's DoesNotExist: 404;
- a database error: its `db_code`, 409 when a retry could resolve it, else 500;
- LockTimeout: 409 with `lock_timeout`; GaveUp: 409 with `retries`;
- Redis or the Celery broker unreachable: 503.
"""
import os
import random
import socket
import sqlite3
import time

from django.core.exceptions import ObjectDoesNotExist
from django.db import DatabaseError
from django.http import JsonResponse

from . import redis_client
from .models import Account

DEFAULT_DELAY = "3000-10000"
# Codes of conflicts a retry could resolve: deadlock, lock wait timeout, snapshot
# conflict (MariaDB innodb_snapshot_isolation), serialization failure, lock not available.
# A unique-key violation (1062, 23505) is a conflict with a concurrent request too.
# SQLITE_BUSY: SQLite refused a lock ("database is locked"). A CHECK constraint violation
# (MySQL 3819, MariaDB 4025, PostgreSQL 23514, SQLite's SQLITE_CONSTRAINT_CHECK) is one
# when the endpoint checked the row first: a concurrent write changed it since.
CONFLICT_CODES = {
    1213, 1205, 1020, 1062, 3819, 4025,
    "40001", "40P01", "55P03", "23505", "23514",
    "SQLITE_BUSY", "SQLITE_CONSTRAINT_CHECK",
}
HOST = socket.gethostname()


def service_errors():
    """Redis's and the Celery broker's errors (unreachable), imported when an error is
    first matched against them: neither library is loaded by a start that needs neither."""
    from kombu.exceptions import OperationalError as BrokerError

    return (redis_client.error_class(), BrokerError)


class BadInput(ValueError):
    """A form field the endpoint cannot use: 400."""


class LockTimeout(Exception):
    """An application lock was not acquired in time: 409 with "lock_timeout": true."""


class GaveUp(Exception):
    """A retry loop ran out of attempts: 409 with the number of `retries` it made."""

    def __init__(self, message, retries):
        super().__init__(message)
        self.retries = retries


def parse_delay(raw):
    """`N` or `LO-HI` milliseconds -> seconds, uniform in [LO, HI]."""
    try:
        if "-" in raw:
            lo, hi = (int(x) for x in raw.split("-", 1))
        else:
            lo = hi = int(raw)
    except ValueError:
        raise BadInput(f"delay_ms must be N or LO-HI milliseconds, got {raw!r}")
    if lo < 0 or lo > hi:
        raise BadInput(f"delay_ms range {raw!r} must satisfy 0 <= LO <= HI")
    return random.randint(lo, hi) / 1000.0


def delay_field(request):
    """The read -> write window of this request, in seconds (`delay_ms`, default 3-10 s)."""
    return parse_delay(request.POST.get("delay_ms") or DEFAULT_DELAY)


def counter_form(request):
    """The form of the counter and task endpoints: `account`, `amount`, `delay_ms`."""
    try:
        account = int(request.POST["account"])
        amount = int(request.POST["amount"])
    except (KeyError, ValueError):
        raise BadInput("form fields 'account' and 'amount' must be integers")
    return {"account": account, "amount": amount, "delay": delay_field(request)}


def error(message, status):
    """An answer that is only an error message (bad method, bad input, no such account)."""
    return JsonResponse({"error": message}, status=status)


def db_code(exc):
    """The database's own code of an error: an int (MySQL), a SQLSTATE (PostgreSQL),
    SQLITE_BUSY, SQLite's extended code name (SQLITE_CONSTRAINT_CHECK...), or None."""
    cause = exc.__cause__ or exc
    if isinstance(cause, sqlite3.OperationalError) and "locked" in str(cause):
        return "SQLITE_BUSY"
    if isinstance(cause, sqlite3.Error):
        return getattr(cause, "sqlite_errorname", None)
    code = getattr(cause, "pgcode", None)
    if code is None and getattr(cause, "args", None):
        first = cause.args[0]
        if isinstance(first, int):
            code = first
    return code


class Call:
    """One request to one endpoint: its name and the timestamps taken so far, which every
    answer carries. `t_start` is when the view began; behind nginx, `t_proxy` is when nginx
    had read the whole request (its X-Request-Start, ms resolution)."""

    def __init__(self, name, request):
        self.name = name
        self.times = {"t_start": time.time_ns()}
        proxy = request.META.get("HTTP_X_REQUEST_START", "")
        try:
            self.times["t_proxy"] = int(float(proxy) * 1e9)
        except ValueError:
            pass

    def mark_read(self, keep_first=False):
        """`t_read`: the endpoint read what it will write back (with `keep_first`, only
        the first read of a retry loop counts)."""
        if keep_first:
            self.times.setdefault("t_read", time.time_ns())
        else:
            self.times["t_read"] = time.time_ns()

    def respond(self, fields, **extra):
        """200: the envelope with the endpoint's `fields`, the timestamps (`t_write` and
        `t_end` taken now: a body calls this once its write is done), then `extra`."""
        self.times["t_write"] = time.time_ns()
        self.times["t_end"] = time.time_ns()
        return JsonResponse(
            {
                "endpoint": self.name,
                "pid": os.getpid(),
                "host": HOST,
                **fields,
                **self.times,
                **extra,
            }
        )

    def balances(self, read, written, **extra):
        """200 of an endpoint that adds to the counter: the balance it read (None when it
        did not read one) and the balance it wrote."""
        return self.respond({"read_balance": read, "written_balance": written}, **extra)

    def refused(self, message, fields):
        """409 of a request the endpoint turned down after its check (a balance that does
        not cover the debit): `error`, then `fields` (what it read), and the timestamps,
        `t_end` taken now; nothing was written, so no `t_write`."""
        self.times["t_end"] = time.time_ns()
        return self.failed(409, {"error": message, **fields})

    def failed(self, status, fields):
        """An error answer: `fields` (the error first), then which process and endpoint
        answered, and the timestamps so far."""
        return JsonResponse(
            {**fields, "pid": os.getpid(), "host": HOST, "endpoint": self.name, **self.times},
            status=status,
        )

    def gave_up(self, e):
        """409 of a retry loop that ran out: the `retries` it made (unlike the other error
        answers, without `host`)."""
        return JsonResponse(
            {
                "error": str(e),
                "retries": e.retries,
                "pid": os.getpid(),
                "endpoint": self.name,
                **self.times,
            },
            status=409,
        )


def view(name, body, form):
    """The Django view of endpoint `name`: POST only, `form(request)` parsed into keyword
    arguments of `body(call, **fields)`, and every failure answered as JSON."""

    def handle(request):
        if request.method != "POST":
            return error("use POST", 405)
        call = Call(name, request)
        try:
            fields = form(request)
        except BadInput as e:
            return error(str(e), 400)
        try:
            return body(call, **fields)
        except Account.DoesNotExist:
            return error(f"no account {fields['account']}", 404)
        except ObjectDoesNotExist as e:
            return error(str(e), 404)
        except DatabaseError as e:
            code = db_code(e)
            status = 409 if code in CONFLICT_CODES else 500
            return call.failed(status, {"error": str(e), "db_code": code})
        except LockTimeout as e:
            return call.failed(409, {"error": str(e), "lock_timeout": True})
        except GaveUp as e:
            return call.gave_up(e)
        except service_errors() as e:
            return call.failed(503, {"error": f"{type(e).__name__}: {e}"})

    handle.__name__ = name
    return handle
