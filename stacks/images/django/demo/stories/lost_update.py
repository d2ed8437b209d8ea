"""Lost updates (seed 001): read the account, wait `delay_ms` (the read -> write window),
add the amount, record a Transaction and save the account. The endpoints differ only in
the countermeasure the database provides: none, a transaction, a row lock, no read at all,
a compare-and-swap, or (SQLite) a transaction that takes the write lock first (BEGIN
IMMEDIATE, or seed 002's BEGIN EXCLUSIVE); or in a second read right before the write
(refresh_from_db, seed 004), which narrows the window without closing it.
"""
import time

from django.db import connection, transaction
from django.db.models import F

from lab.sqlite.base import begin

from ..envelope import GaveUp, error
from ..models import Account, Transaction
from ..registry import EVERY, SQLITE, endpoint

# optimistic_version's attempts after the first
MAX_RETRIES = 20


def increment(call, account_id, amount, delay, accounts=None, refresh=False):
    """Read, wait, write: the read-modify-write the seed lab demonstrates, reading through
    `accounts` (a locking queryset) when given. With `refresh`, the wait comes first and
    the account is read again (refresh_from_db) right before the write. Returns what the
    answer tells: the balance read and written (`read`, `written`) and the row's version
    read and written."""
    account = (Account.objects if accounts is None else accounts).get(pk=account_id)
    if refresh:
        if delay:
            time.sleep(delay)
        delay = 0
        account.refresh_from_db()
    call.mark_read()
    read_balance, read_version = account.balance, account.version
    if delay:
        time.sleep(delay)
    Transaction.objects.create(account=account, amount=amount)
    written = read_balance + amount
    return {
        "read": read_balance,
        "written": written,
        "read_version": read_version,
        "written_version": save_balance(account_id, written),
    }


def save_balance(account_id, balance):
    """`account.save()` of the balance computed from the read, as one UPDATE that also
    bumps the row's `version` from its current value; returns the version written. A write
    holds the row's lock until its commit, so versions number the writes in commit order:
    what lets `racy-matrix explain` name who erased whom without trusting the clock."""
    table = connection.ops.quote_name(Account._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            # no UPDATE ... RETURNING: LAST_INSERT_ID(expr) keeps the value for this session
            cursor.execute(
                f"UPDATE {table} SET balance = %s, version = LAST_INSERT_ID(version + 1) "
                "WHERE id = %s",
                [balance, account_id],
            )
            if cursor.rowcount == 0:
                raise Account.DoesNotExist
            cursor.execute("SELECT LAST_INSERT_ID()")
        else:
            cursor.execute(
                f"UPDATE {table} SET balance = %s, version = version + 1 WHERE id = %s "
                "RETURNING version",
                [balance, account_id],
            )
        # every row fetched: SQLite ends (and under autocommit commits) the statement
        rows = cursor.fetchall()
    if not rows:
        raise Account.DoesNotExist
    return rows[0][0]


@endpoint("atomic_long_delay", check="counter", countermeasure="atomic() only", engines=EVERY)
def atomic_long_delay(call, account, amount, delay):
    with transaction.atomic():
        wrote = increment(call, account, amount, delay)
    return call.balances(**wrote)


@endpoint(
    "non_atomic_long_delay", check="counter", countermeasure="none (autocommit)", engines=EVERY
)
def non_atomic_long_delay(call, account, amount, delay):
    return call.balances(**increment(call, account, amount, delay))


@endpoint("atomic_no_delay", check="counter", countermeasure="atomic() only")
def atomic_no_delay(call, account, amount, delay):
    with transaction.atomic():
        wrote = increment(call, account, amount, 0)
    return call.balances(**wrote)


@endpoint("non_atomic_no_delay", check="counter", countermeasure="none (autocommit)")
def non_atomic_no_delay(call, account, amount, delay):
    return call.balances(**increment(call, account, amount, 0))


@endpoint(
    "refresh_long_delay",
    check="counter",
    countermeasure="refresh_from_db() after the delay: the window shrinks to the ledger "
    "insert before the save (autocommit)",
)
def refresh_long_delay(call, account, amount, delay):
    """Seed 004's last answer: re-read the instance after the slow part. Each statement
    commits on its own, so the isolation level does not reach the re-read."""
    return call.balances(**increment(call, account, amount, delay, refresh=True))


@endpoint(
    "row_locking_atomic_long_delay",
    check="counter",
    countermeasure="select_for_update() in atomic(): a row lock held until the commit",
)
def row_locking_atomic_long_delay(call, account, amount, delay):
    with transaction.atomic():
        wrote = increment(call, account, amount, delay, Account.objects.select_for_update())
    return call.balances(**wrote)


@endpoint(
    "row_locking_nowait",
    check="counter",
    countermeasure="select_for_update(nowait=True) in atomic(): a second request fails at "
    "once (409) instead of waiting",
)
def row_locking_nowait(call, account, amount, delay):
    with transaction.atomic():
        wrote = increment(
            call, account, amount, delay, Account.objects.select_for_update(nowait=True)
        )
    return call.balances(**wrote)


@endpoint(
    "f_expression",
    check="counter",
    countermeasure="no read: the database adds (UPDATE ... SET balance = balance + amount)",
)
def f_expression(call, account, amount, delay):
    if delay:
        time.sleep(delay)
    with transaction.atomic():
        call.mark_read()
        updated = Account.objects.filter(pk=account).update(balance=F("balance") + amount)
        if not updated:
            raise Account.DoesNotExist
        Transaction.objects.create(account_id=account, amount=amount)
        written = Account.objects.values_list("balance", flat=True).get(pk=account)
    return call.balances(None, written)


@endpoint(
    "optimistic_version",
    check="counter",
    countermeasure=f"compare-and-swap on a version column, retried up to {MAX_RETRIES} times",
)
def optimistic_version(call, account, amount, delay):
    for attempt in range(MAX_RETRIES + 1):
        current = Account.objects.get(pk=account)
        call.mark_read(keep_first=True)
        if delay:
            time.sleep(delay)
        with transaction.atomic():
            swapped = Account.objects.filter(pk=account, version=current.version).update(
                balance=current.balance + amount, version=current.version + 1
            )
            if swapped:
                Transaction.objects.create(account_id=account, amount=amount)
                # answered inside the transaction: t_write is the swap, not its commit
                return call.balances(
                    current.balance,
                    current.balance + amount,
                    retries=attempt,
                    read_version=current.version,
                    written_version=current.version + 1,
                )
    raise GaveUp(f"version kept changing: gave up after {MAX_RETRIES} retries", MAX_RETRIES)


def sqlite_begin(call, mode, account, amount, delay):
    """The atomic read-modify-write in a transaction begun with `BEGIN <mode>`: it takes
    the write lock before the read, so the read-modify-writes run one after another; a
    writer waits up to the busy timeout, 20 s, then fails with SQLITE_BUSY."""
    if connection.vendor != "sqlite":
        return error(f"{call.name} needs DB_ENGINE=sqlite", 400)
    with begin(mode), transaction.atomic():
        wrote = increment(call, account, amount, delay)
    return call.balances(**wrote)


@endpoint(
    "immediate_long_delay",
    check="counter",
    countermeasure="atomic() begun with BEGIN IMMEDIATE: SQLite's write lock before the read",
    engines=SQLITE,
)
def immediate_long_delay(call, account, amount, delay):
    return sqlite_begin(call, "IMMEDIATE", account, amount, delay)


@endpoint(
    "exclusive_long_delay",
    check="counter",
    countermeasure="atomic() begun with BEGIN EXCLUSIVE: the write lock before the read, "
    "readers kept out too",
    engines=SQLITE,
)
def exclusive_long_delay(call, account, amount, delay):
    return sqlite_begin(call, "EXCLUSIVE", account, amount, delay)
