"""The lab's endpoints. Form fields: account, amount, delay_ms (N or LO-HI ms), and
lock_ttl_ms (lock_redis) or name (the get_or_create family).

Counter endpoints read the account, optionally wait `delay_ms` (the read -> write window),
then add the amount, record a Transaction and save the account. They differ only in the
countermeasure:
- atomic_* / non_atomic_*: a transaction, or none (autocommit);
- row_locking_*, f_expression, optimistic_version: a row lock, no read, compare-and-swap;
- immediate_long_delay (SQLite only): atomic, begun with BEGIN IMMEDIATE (write lock first);
- lock_thread, lock_flock_local, lock_flock_shared, lock_redis: the autocommit
  read -> delay -> write of non_atomic_long_delay inside an application lock whose scope
  is one process, one container (/tmp), every replica (/shared), or a Redis lease that
  expires after lock_ttl_ms (seed 002: a lock only helps where its scope reaches).
Task endpoints (seed 003) create a Job in a transaction and hand its id to a Celery task
that records whether it could see the Job: task_in_transaction dispatches before the
commit, task_on_commit from transaction.on_commit.
Unique endpoints (seed 004) get-or-create the thing called `name`.
Errors are JSON with `db_code`; conflicts (deadlock, serialization, lock, SQLITE_BUSY)
answer 409.
"""
import contextlib
import fcntl
import os
import random
import secrets
import socket
import sqlite3
import threading
import time

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import F
from django.http import JsonResponse
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from lab.sqlite.base import immediate

from . import middleware, redis_client, tasks
from .models import Account, Job, LooseThing, Thing, Transaction

DEFAULT_DELAY = "3000-10000"
# Codes of conflicts a retry could resolve: deadlock, lock wait timeout, snapshot
# conflict (MariaDB innodb_snapshot_isolation), serialization failure, lock not available.
# A unique-key violation (1062, 23505) is a conflict with a concurrent request too.
# SQLITE_BUSY: SQLite refused a lock ("database is locked").
CONFLICT_CODES = {1213, 1205, 1020, 1062, "40001", "40P01", "55P03", "23505", "SQLITE_BUSY"}
HOST = socket.gethostname()
# Redis or the Celery broker is unreachable.
SERVICE_ERRORS = (RedisError, BrokerError)


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
    if isinstance(cause, sqlite3.OperationalError) and "locked" in str(cause):
        return "SQLITE_BUSY"
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
            "host": HOST,
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
        {
            "error": str(e),
            "db_code": code,
            "pid": os.getpid(),
            "host": HOST,
            "endpoint": name,
            **times,
            **extra,
        },
        status=status,
    )


def started(request):
    """The request's timestamps so far: `t_start` (the view begins) and, behind nginx,
    `t_proxy` (nginx had read the whole request; its X-Request-Start, ms resolution)."""
    times = {"t_start": time.time_ns()}
    proxy = request.META.get("HTTP_X_REQUEST_START", "")
    try:
        times["t_proxy"] = int(float(proxy) * 1e9)
    except ValueError:
        pass
    return times


def guarded(name, body, fields=None):
    """Common request handling: POST only, parsed input, JSON errors. `fields(request)`
    parses extra form fields into keyword arguments of `body`."""

    def view(request):
        if request.method != "POST":
            return JsonResponse({"error": "use POST"}, status=405)
        times = started(request)
        try:
            account_id, amount, delay = parse(request)
            kwargs = fields(request) if fields else {}
        except BadInput as e:
            return JsonResponse({"error": str(e)}, status=400)
        try:
            return body(account_id, amount, delay, times, **kwargs)
        except Account.DoesNotExist:
            return JsonResponse({"error": f"no account {account_id}"}, status=404)
        except DatabaseError as e:
            return db_failure(name, e, times)
        except LockTimeout as e:
            return JsonResponse(
                {"error": str(e), "lock_timeout": True, "pid": os.getpid(), "host": HOST,
                 "endpoint": name, **times},
                status=409,
            )
        except SERVICE_ERRORS as e:
            return JsonResponse(
                {"error": f"{type(e).__name__}: {e}", "pid": os.getpid(), "host": HOST,
                 "endpoint": name, **times},
                status=503,
            )

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
        times = started(request)
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
                "host": HOST,
                "id": thing.pk,
                "created": created,
                # an IntegrityError the retry turned into a success
                "retries": 1 if hidden else 0,
                **times,
            }
        )

    view.__name__ = name
    return view


def immediate_long_delay(account_id, amount, delay, times):
    """atomic_long_delay begun with BEGIN IMMEDIATE: SQLite's write lock is taken before
    the read, so the read-modify-writes run one after another (a writer waits up to the
    busy timeout, 20 s, then fails with SQLITE_BUSY)."""
    if connection.vendor != "sqlite":
        return JsonResponse({"error": "immediate_long_delay needs DB_ENGINE=sqlite"}, status=400)
    with immediate(), transaction.atomic():
        read, written = increment(account_id, amount, delay, False, times)
    return respond("immediate_long_delay", read, written, times)


# --- application locks around the non-atomic read -> delay -> write (seed 002) ---

LOCK_GIVE_UP = 60.0  # seconds; then 409 with "lock_timeout": true
LOCK_POLL = 0.005


class LockTimeout(Exception):
    pass


def lock_fields(request):
    raw = request.POST.get("lock_ttl_ms") or "30000"
    try:
        ttl = int(raw)
    except ValueError:
        raise BadInput(f"lock_ttl_ms must be an integer, got {raw!r}")
    if ttl <= 0:
        raise BadInput(f"lock_ttl_ms must be positive, got {ttl}")
    return {"ttl_ms": ttl}


_thread_lock = threading.Lock()


@contextlib.contextmanager
def thread_lock(account_id, ttl_ms, info):
    """Process-local: each Gunicorn worker has its own, so it only helps with 1 worker."""
    if not _thread_lock.acquire(timeout=LOCK_GIVE_UP):
        raise LockTimeout(f"thread lock not acquired within {LOCK_GIVE_UP:.0f} s")
    try:
        yield
    finally:
        _thread_lock.release()


def file_lock(path):
    """flock on `path`: shared by whoever sees the same file (one container's /tmp, or the
    /shared volume of every replica). Released when the descriptor closes, also when the
    worker dies."""

    @contextlib.contextmanager
    def hold(account_id, ttl_ms, info):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + LOCK_GIVE_UP
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LockTimeout(f"flock {path} not acquired within {LOCK_GIVE_UP:.0f} s")
                    time.sleep(LOCK_POLL)
            yield
        finally:
            os.close(fd)

    return hold


# Delete the key only if it still holds our token (another request may own it by now).
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


@contextlib.contextmanager
def redis_lease(account_id, ttl_ms, info):
    """SET racy:lock:<account> <token> NX PX ttl_ms, retried until acquired; released with
    a compare-and-delete. A lease shorter than the work expires mid-way and lets the next
    request in: info["lease_expired"] tells whether the release found the token gone."""
    r = redis_client.client()
    if r is None:
        raise RedisError("REDIS_URL is not set")
    key = f"racy:lock:{account_id}"
    token = secrets.token_hex(16)
    deadline = time.monotonic() + LOCK_GIVE_UP
    while not r.set(key, token, nx=True, px=ttl_ms):
        if time.monotonic() > deadline:
            raise LockTimeout(f"Redis lease {key} not acquired within {LOCK_GIVE_UP:.0f} s")
        time.sleep(LOCK_POLL)
    try:
        yield
    finally:
        info["lease_expired"] = r.eval(RELEASE, 1, key, token) == 0


def locked_endpoint(name, lock):
    def body(account_id, amount, delay, times, ttl_ms):
        info = {}
        waited = time.monotonic()
        with lock(account_id, ttl_ms, info):
            info["lock_wait_ms"] = round((time.monotonic() - waited) * 1000, 1)
            read, written = increment(account_id, amount, delay, False, times)
        return respond(name, read, written, times, **info)

    return guarded(name, body, lock_fields)


# --- Celery tasks dispatched from a transaction (seed 003) ---


def dispatch(job_pk):
    """Count the task as outstanding (GET /inflight), then send it."""
    r = redis_client.client()
    if r is None:
        raise RedisError("REDIS_URL is not set")
    r.incr(redis_client.DISPATCHED)
    try:
        tasks.check_job.delay(job_pk)
    except BaseException:
        r.decr(redis_client.DISPATCHED)
        raise


def task_endpoint(name, on_commit):
    """Create a Job, dispatch check_job(job.pk) (now, or once the transaction commits),
    wait `delay_ms`, commit. Dispatched now, the task may look for the Job before it is
    committed: TaskRun.found=False."""

    def body(account_id, amount, delay, times):
        with transaction.atomic():
            job = Job.objects.create()
            times["t_read"] = time.time_ns()
            if on_commit:
                transaction.on_commit(lambda: dispatch(job.pk))
            else:
                dispatch(job.pk)
            if delay:
                time.sleep(delay)
        return respond(name, None, None, times, job=job.pk)

    return guarded(name, body)


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
    "immediate_long_delay": guarded("immediate_long_delay", immediate_long_delay),
    "lock_thread": locked_endpoint("lock_thread", thread_lock),
    "lock_flock_local": locked_endpoint("lock_flock_local", file_lock("/tmp/racy-counter.lock")),
    "lock_flock_shared": locked_endpoint(
        "lock_flock_shared", file_lock("/shared/racy-counter.lock")
    ),
    "lock_redis": locked_endpoint("lock_redis", redis_lease),
    "task_in_transaction": task_endpoint("task_in_transaction", on_commit=False),
    "task_on_commit": task_endpoint("task_on_commit", on_commit=True),
}


def health(request):
    """200 once the app answers, its database does, and every migration is applied (the
    app starts beside the one-shot `migrate` service and is ready only after it)."""
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as e:
        return JsonResponse({"ok": False, "error": str(e)}, status=503)
    if pending:
        return JsonResponse(
            {"ok": False, "error": f"{len(pending)} migrations not applied yet"}, status=503
        )
    return JsonResponse({"ok": True, "pid": os.getpid()})


def inflight(request):
    """Requests in flight on any replica, plus Celery tasks dispatched but not done; with
    ?burst=TOKEN, also how many requests of that burst the app accepted."""
    requests = middleware.count()
    extra = {}
    token = request.GET.get("burst")
    if token is not None:
        extra["accepted"] = middleware.accepted(token)
    outstanding = 0
    r = redis_client.client()
    if r is not None:
        try:
            dispatched, done = r.mget(redis_client.DISPATCHED, redis_client.DONE)
        except RedisError as e:
            return JsonResponse({"error": f"redis: {e}", "requests": requests}, status=503)
        outstanding = max(0, int(dispatched or 0) - int(done or 0))
    return JsonResponse(
        {"inflight": requests + outstanding, "requests": requests, "tasks": outstanding, **extra}
    )
