"""Application locks (seed 002): the unguarded autocommit read -> delay -> write of
non_atomic_long_delay inside a lock whose scope is one process, one container (/tmp),
every replica (/shared), or a Redis lease that expires after `lock_ttl_ms`. A lock only
helps where its scope reaches.

Answers add `lock_wait_ms` (time spent acquiring) and, for the lease, `lease_expired`
(the release found another request's token, or none). A lock not acquired within
LOCK_GIVE_UP answers 409 with "lock_timeout": true.
"""
import contextlib
import fcntl
import os
import secrets
import threading
import time

from .. import redis_client
from ..envelope import BadInput, LockTimeout, counter_form
from ..registry import EVERY, endpoint
from .lost_update import increment

LOCK_GIVE_UP = 60.0  # seconds
LOCK_POLL = 0.005


def lock_form(request):
    """The counter form plus `lock_ttl_ms` (the Redis lease; default 30 s)."""
    form = counter_form(request)
    raw = request.POST.get("lock_ttl_ms") or "30000"
    try:
        ttl = int(raw)
    except ValueError:
        raise BadInput(f"lock_ttl_ms must be an integer, got {raw!r}")
    if ttl <= 0:
        raise BadInput(f"lock_ttl_ms must be positive, got {ttl}")
    form["ttl_ms"] = ttl
    return form


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


container_flock = file_lock("/tmp/racy-counter.lock")
shared_flock = file_lock("/shared/racy-counter.lock")

# lock_flock_mixed's tickets: a counter in the shared volume, itself incremented under an
# flock of its own (held for the increment only, never during the read -> write).
TICKETS = "/shared/racy-mixed.ticket"


def next_ticket():
    """The next number of a counter every replica shares: consecutive requests, whoever
    serves them, get consecutive tickets."""
    fd = os.open(TICKETS, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, 32, 0)
        ticket = int(raw) if raw.strip() else 0
        os.pwrite(fd, b"%-20d" % (ticket + 1), 0)
        return ticket
    finally:
        os.close(fd)


@contextlib.contextmanager
def no_lock(account_id, ttl_ms, info):
    """A writer that does not take the lock: flock is advisory, nothing stops it."""
    yield

# Delete the key only if it still holds our token (another request may own it by now).
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


@contextlib.contextmanager
def redis_lease(account_id, ttl_ms, info):
    """SET racy:lock:<account> <token> NX PX ttl_ms, retried until acquired; released with
    a compare-and-delete. A lease shorter than the work expires mid-way and lets the next
    request in: info["lease_expired"] tells whether the release found the token gone."""
    r = redis_client.client()
    if r is None:
        raise redis_client.not_deployed()
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


def increment_under(call, lock, account, amount, delay, ttl_ms, **extra):
    """non_atomic_long_delay's read -> delay -> write while holding
    `lock(account, ttl_ms, info)`; the answer adds `extra` and what the lock put in
    `info`."""
    info = dict(extra)
    waited = time.monotonic()
    with lock(account, ttl_ms, info):
        info["lock_wait_ms"] = round((time.monotonic() - waited) * 1000, 1)
        wrote = increment(call, account, amount, delay)
    return call.balances(**wrote, **info)


@endpoint(
    "lock_thread",
    check="counter",
    countermeasure="threading.Lock: one process",
    engines=EVERY,
    form=lock_form,
)
def lock_thread(call, account, amount, delay, ttl_ms):
    return increment_under(call, thread_lock, account, amount, delay, ttl_ms)


@endpoint(
    "lock_flock_local",
    check="counter",
    countermeasure="flock on a file in /tmp: one container",
    engines=EVERY,
    form=lock_form,
)
def lock_flock_local(call, account, amount, delay, ttl_ms):
    return increment_under(call, container_flock, account, amount, delay, ttl_ms)


@endpoint(
    "lock_flock_shared",
    check="counter",
    countermeasure="flock on a file in the /shared volume: every replica",
    engines=EVERY,
    form=lock_form,
)
def lock_flock_shared(call, account, amount, delay, ttl_ms):
    return increment_under(call, shared_flock, account, amount, delay, ttl_ms)


@endpoint(
    "lock_redis",
    check="counter",
    countermeasure="Redis lease (SET NX PX lock_ttl_ms, released with its token): every "
    "replica, until the lease expires",
    engines=EVERY,
    form=lock_form,
)
def lock_redis(call, account, amount, delay, ttl_ms):
    return increment_under(call, redis_lease, account, amount, delay, ttl_ms)


@endpoint(
    "lock_flock_mixed",
    check="counter",
    countermeasure="flock on the shared file taken by every other request only (flock is "
    "advisory: the others write without it)",
    engines=EVERY,
    form=lock_form,
)
def lock_flock_mixed(call, account, amount, delay, ttl_ms):
    """lock_flock_shared for requests with an even ticket, the unguarded read -> write for
    the odd ones. A burst sends identical requests, so the app makes the mix itself: the
    tickets come from one counter on the shared volume, so a burst of 2n requests has n of
    each whichever processes serve it. The answer says which it was (`locked`, `ticket`)."""
    ticket = next_ticket()
    locked = ticket % 2 == 0
    lock = shared_flock if locked else no_lock
    return increment_under(
        call, lock, account, amount, delay, ttl_ms, locked=locked, ticket=ticket
    )
