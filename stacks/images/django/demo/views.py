"""The lab's endpoints: five ways to add to a balance, as in the seed lab.

Each reads the account, optionally waits `delay_ms` (the read -> write window), then
adds the amount, records a Transaction and saves the account. They differ only in the
countermeasure: a transaction (atomic), none (autocommit), or a row lock.
"""
import os
import random
import time

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.http import JsonResponse

from . import middleware
from .models import Account, LooseThing, Thing, Transaction

DEFAULT_DELAY = "3000-10000"
# Codes of conflicts a retry could resolve: deadlock, lock wait timeout, snapshot
# conflict (MariaDB innodb_snapshot_isolation), serialization failure, lock not available.
# A unique-key violation (1062, 23505) is a conflict with a concurrent request too.
CONFLICT_CODES = {1213, 1205, 1020, 1062, "40001", "40P01", "55P03", "23505"}


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
    """One of the seed lab's five read-modify-write endpoints."""

    def body(account_id, amount, delay, times):
        delay = delay if delayed else 0
        if atomic:
            with transaction.atomic():
                read, written = increment(account_id, amount, delay, lock, times)
        else:
            read, written = increment(account_id, amount, delay, lock, times)
        return respond(name, read, written, times)

    return guarded(name, body)


def respond(name, read, written, times, **extra):
    times["t_write"] = time.time_ns()
    times["t_end"] = time.time_ns()
    return JsonResponse(
        {
            "endpoint": name,
            "pid": os.getpid(),
            "read_balance": read,
            "written_balance": written,
            **times,
            **extra,
        }
    )


def db_failure(name, e, times, **extra):
    code = db_code(e)
    status = 409 if code in CONFLICT_CODES else 500
    return JsonResponse(
        {"error": str(e), "db_code": code, "pid": os.getpid(), "endpoint": name, **times, **extra},
        status=status,
    )


def guarded(name, body):
    """Common request handling: POST only, parsed input, JSON errors."""

    def view(request):
        if request.method != "POST":
            return JsonResponse({"error": "use POST"}, status=405)
        times = {"t_start": time.time_ns()}
        try:
            account_id, amount, delay = parse(request)
        except BadInput as e:
            return JsonResponse({"error": str(e)}, status=400)
        try:
            return body(account_id, amount, delay, times)
        except Account.DoesNotExist:
            return JsonResponse({"error": f"no account {account_id}"}, status=404)
        except DatabaseError as e:
            return db_failure(name, e, times)

    view.__name__ = name
    return view


def f_expression(account_id, amount, delay, times):
    """No read at all: the database adds (UPDATE ... SET balance = balance + amount)."""
    if delay:
        time.sleep(delay)
    with transaction.atomic():
        times["t_read"] = time.time_ns()
        updated = Account.objects.filter(pk=account_id).update(balance=F("balance") + amount)
        if not updated:
            raise Account.DoesNotExist
        Transaction.objects.create(account_id=account_id, amount=amount)
        written = Account.objects.values_list("balance", flat=True).get(pk=account_id)
    return respond("f_expression", None, written, times)


MAX_RETRIES = 20


def optimistic_version(account_id, amount, delay, times):
    """Compare-and-swap on a version column; retry (up to MAX_RETRIES) when it moved."""
    for attempt in range(MAX_RETRIES + 1):
        account = Account.objects.get(pk=account_id)
        times.setdefault("t_read", time.time_ns())
        if delay:
            time.sleep(delay)
        with transaction.atomic():
            swapped = Account.objects.filter(pk=account_id, version=account.version).update(
                balance=account.balance + amount, version=account.version + 1
            )
            if swapped:
                Transaction.objects.create(account_id=account_id, amount=amount)
                return respond(
                    "optimistic_version",
                    account.balance,
                    account.balance + amount,
                    times,
                    retries=attempt,
                )
    return JsonResponse(
        {
            "error": f"version kept changing: gave up after {MAX_RETRIES} retries",
            "retries": MAX_RETRIES,
            "pid": os.getpid(),
            "endpoint": "optimistic_version",
            **times,
        },
        status=409,
    )


def row_locking_nowait(account_id, amount, delay, times):
    """select_for_update(nowait=True): a second request fails at once (409) instead of waiting."""
    with transaction.atomic():
        account = Account.objects.select_for_update(nowait=True).get(pk=account_id)
        times["t_read"] = time.time_ns()
        read = account.balance
        if delay:
            time.sleep(delay)
        account.balance += amount
        Transaction.objects.create(account=account, amount=amount)
        account.save()
    return respond("row_locking_nowait", read, account.balance, times)


def create_or_fetch(model, name):
    """Create in a savepoint; when the unique constraint refuses, fetch the row that won
    (the retry that hides the race), or re-raise when this transaction cannot see it."""
    try:
        with transaction.atomic():
            return model.objects.create(name=name), True, False
    except IntegrityError:
        try:
            return model.objects.get(name=name), False, True
        except model.DoesNotExist:
            pass
        raise


def get_then_create(model, name, delay):
    """Django's QuerySet.get_or_create, step by step, with the read -> write window in the
    middle: get; on DoesNotExist wait `delay`, then create-or-fetch."""
    try:
        return model.objects.get(name=name), False, False
    except model.DoesNotExist:
        pass
    if delay:
        time.sleep(delay)
    return create_or_fetch(model, name)


def create_then_get(model, name, delay):
    """The safe order: no read first; create, and fetch when the constraint refuses."""
    if delay:
        time.sleep(delay)
    return create_or_fetch(model, name)


def unique_endpoint(name, model, how):
    """A request that gets-or-creates the thing named by the `name` field, inside one
    transaction (as with ATOMIC_REQUESTS), so its snapshot is what the isolation level
    makes it."""

    def view(request):
        if request.method != "POST":
            return JsonResponse({"error": "use POST"}, status=405)
        times = {"t_start": time.time_ns()}
        thing_name = request.POST.get("name", "").strip()
        if not thing_name:
            return JsonResponse({"error": "form field 'name' is required"}, status=400)
        try:
            delay = parse_delay(request.POST.get("delay_ms") or DEFAULT_DELAY)
        except BadInput as e:
            return JsonResponse({"error": str(e)}, status=400)
        try:
            with transaction.atomic():
                times["t_read"] = time.time_ns()
                thing, created, hidden = how(model, thing_name, delay)
        except DatabaseError as e:
            return db_failure(name, e, times)
        times["t_write"] = time.time_ns()
        times["t_end"] = time.time_ns()
        return JsonResponse(
            {
                "endpoint": name,
                "pid": os.getpid(),
                "id": thing.pk,
                "created": created,
                # an IntegrityError the retry turned into a success
                "retries": 1 if hidden else 0,
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
    "f_expression": guarded("f_expression", f_expression),
    "optimistic_version": guarded("optimistic_version", optimistic_version),
    "row_locking_nowait": guarded("row_locking_nowait", row_locking_nowait),
    "get_or_create": unique_endpoint("get_or_create", Thing, get_then_create),
    "get_or_create_no_unique": unique_endpoint(
        "get_or_create_no_unique", LooseThing, get_then_create
    ),
    "create_or_get": unique_endpoint("create_or_get", Thing, create_then_get),
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
