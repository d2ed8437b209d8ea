"""The lab's endpoints: five ways to add to a balance, as in the seed lab.

Each reads the account, optionally waits `delay_ms` (the read -> write window), then
adds the amount, records a Transaction and saves the account. They differ only in the
countermeasure: a transaction (atomic), none (autocommit), or a row lock.
"""
import os
import random
import time

from django.db import DatabaseError, connection, transaction
from django.http import JsonResponse

from . import middleware
from .models import Account, Transaction

DEFAULT_DELAY = "3000-10000"
# Codes of conflicts a retry could resolve: deadlock, lock wait timeout, snapshot
# conflict (MariaDB innodb_snapshot_isolation), serialization failure, lock not available.
CONFLICT_CODES = {1213, 1205, 1020, "40001", "40P01", "55P03"}


class BadInput(ValueError):
    pass


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


def parse(request):
    try:
        account = int(request.POST["account"])
        amount = int(request.POST["amount"])
    except (KeyError, ValueError):
        raise BadInput("form fields 'account' and 'amount' must be integers")
    delay = parse_delay(request.POST.get("delay_ms") or DEFAULT_DELAY)
    return account, amount, delay


def db_code(exc):
    cause = exc.__cause__ or exc
    code = getattr(cause, "pgcode", None)
    if code is None and getattr(cause, "args", None):
        first = cause.args[0]
        if isinstance(first, int):
            code = first
    return code


def increment(account_id, amount, delay, lock, times):
    """Read, wait, write: the read-modify-write the seed lab demonstrates."""
    accounts = Account.objects.select_for_update() if lock else Account.objects
    account = accounts.get(pk=account_id)
    times["t_read"] = time.time_ns()
    read_balance = account.balance
    if delay:
        time.sleep(delay)
    account.balance += amount
    Transaction.objects.create(account=account, amount=amount)
    account.save()
    return read_balance, account.balance


def endpoint(name, atomic, delayed, lock=False):
    def view(request):
        if request.method != "POST":
            return JsonResponse({"error": "use POST"}, status=405)
        times = {"t_start": time.time_ns()}
        try:
            account_id, amount, delay = parse(request)
        except BadInput as e:
            return JsonResponse({"error": str(e)}, status=400)
        if not delayed:
            delay = 0
        try:
            if atomic:
                with transaction.atomic():
                    read, written = increment(account_id, amount, delay, lock, times)
            else:
                read, written = increment(account_id, amount, delay, lock, times)
        except Account.DoesNotExist:
            return JsonResponse({"error": f"no account {account_id}"}, status=404)
        except DatabaseError as e:
            code = db_code(e)
            status = 409 if code in CONFLICT_CODES else 500
            return JsonResponse(
                {"error": str(e), "db_code": code, "pid": os.getpid(), "endpoint": name, **times},
                status=status,
            )
        times["t_write"] = time.time_ns()
        times["t_end"] = time.time_ns()
        return JsonResponse(
            {
                "endpoint": name,
                "pid": os.getpid(),
                "read_balance": read,
                "written_balance": written,
                **times,
            }
        )

    view.__name__ = name
    return view


ENDPOINTS = {
    "atomic_long_delay": endpoint("atomic_long_delay", atomic=True, delayed=True),
    "non_atomic_long_delay": endpoint("non_atomic_long_delay", atomic=False, delayed=True),
    "atomic_no_delay": endpoint("atomic_no_delay", atomic=True, delayed=False),
    "non_atomic_no_delay": endpoint("non_atomic_no_delay", atomic=False, delayed=False),
    "row_locking_atomic_long_delay": endpoint(
        "row_locking_atomic_long_delay", atomic=True, delayed=True, lock=True
    ),
}


def health(request):
    """200 once the app answers and its database does (migrations ran before start)."""
    try:
        with connection.cursor() as c:
            c.execute("SELECT 1")
            c.fetchone()
    except DatabaseError as e:
        return JsonResponse({"ok": False, "error": str(e)}, status=503)
    return JsonResponse({"ok": True, "pid": os.getpid()})


def inflight(request):
    return JsonResponse({"inflight": middleware.count()})
