"""Check-then-act: the endpoint reads, checks what it read, waits `delay_ms`, then acts on
the check. Nothing is lost here (every write is computed by the database from the row's
current value); what breaks is the invariant the check stood for.

- Overdraft (limit overrun): a wallet's balance covers one debit; every request reads it,
  finds it covers theirs, and debits (`UPDATE ... SET balance = balance - amount`). The
  invariant `no_overdraft` counts debits that left the balance below zero. Countermeasures:
  a row lock on the read, no read at all (a conditional UPDATE), or the database's own
  CHECK (balance >= 0).
- Write skew (Hermitage G2-item, doctors on call): each request counts the doctors on
  call and, when there are two, takes its own doctor off call; the two UPDATEs touch
  different rows, so no row conflict stops them. The invariant `one_on_call` is broken
  when nobody is left on call. Countermeasures: locking every doctor before the count,
  or SERIALIZABLE.

Answers: `read` (the balance, or the number of doctors on call, the check saw; null when
there was no read) and `accepted`. An accepted debit adds `written`, the balance its
UPDATE left, and `debit`, its ledger row; a refused request answers 409 with the same
`read`. Form fields: `wallet`, `amount`, `delay_ms`; `doctor`, `delay_ms`.
"""
import time

from django.db import connection, transaction

from ..envelope import BadInput, delay_field
from ..models import ConstrainedWallet, Debit, Doctor, Wallet
from ..registry import EVERY, endpoint


def wallet_form(request):
    """The form of the withdraw endpoints: `wallet`, `amount` (positive), `delay_ms`."""
    try:
        wallet = int(request.POST["wallet"])
        amount = int(request.POST["amount"])
    except (KeyError, ValueError):
        raise BadInput("form fields 'wallet' and 'amount' must be integers")
    if amount <= 0:
        raise BadInput(f"amount must be positive, got {amount}")
    return {"wallet": wallet, "amount": amount, "delay": delay_field(request)}


def doctor_form(request):
    """The form of the on-call endpoints: `doctor`, `delay_ms`."""
    try:
        doctor = int(request.POST["doctor"])
    except (KeyError, ValueError):
        raise BadInput("form field 'doctor' must be an integer")
    return {"doctor": doctor, "delay": delay_field(request)}


def read_balance(model, wallet_id, lock=False):
    """The wallet's balance, read under a row lock with `lock` (select_for_update)."""
    rows = model.objects.select_for_update() if lock else model.objects
    try:
        return rows.values_list("balance", flat=True).get(pk=wallet_id)
    except model.DoesNotExist:
        raise model.DoesNotExist(f"no wallet {wallet_id}")


def debit(model, wallet_id, amount, covered=False):
    """`UPDATE ... SET balance = balance - amount` (the F() expression's UPDATE; with
    `covered`, only WHERE balance >= amount). Returns the balance the UPDATE left, or None
    when it updated no row. The UPDATE holds the row's lock until the commit, so the
    balances returned follow the commit order."""
    table = connection.ops.quote_name(model._meta.db_table)
    condition, params = "", [amount, wallet_id]
    if covered:
        condition, params = " AND balance >= %s", params + [amount]
    update = f"UPDATE {table} SET balance = balance - %s WHERE id = %s{condition}"
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            # MariaDB has no UPDATE ... RETURNING: read the row again, in this transaction
            # and under the lock the UPDATE took
            cursor.execute(update, params)
            if cursor.rowcount == 0:
                return None
            cursor.execute(f"SELECT balance FROM {table} WHERE id = %s FOR UPDATE", [wallet_id])
        else:
            cursor.execute(update + " RETURNING balance", params)
        # every row fetched: SQLite ends the statement
        rows = cursor.fetchall()
    return rows[0][0] if rows else None


def record(model, wallet_id, amount, balance_after):
    """The ledger row of a debit of `model`'s wallet."""
    which = "constrained_wallet_id" if model is ConstrainedWallet else "wallet_id"
    return Debit.objects.create(
        **{which: wallet_id}, amount=amount, balance_after=balance_after
    )


def withdraw(call, model, wallet, amount, delay, lock=False):
    """In one transaction: read the balance (under a row lock with `lock`); when it covers
    `amount`, wait `delay`, debit and record the debit. 409 when it does not cover it."""
    with transaction.atomic():
        balance = read_balance(model, wallet, lock)
        call.mark_read()
        if balance < amount:
            return call.refused(
                f"balance {balance} does not cover {amount}", {"read": balance, "accepted": False}
            )
        if delay:
            time.sleep(delay)
        after = debit(model, wallet, amount)
        if after is None:
            raise model.DoesNotExist(f"no wallet {wallet}")
        row = record(model, wallet, amount, after)
    return call.respond({"read": balance, "accepted": True, "written": after, "debit": row.pk})


@endpoint(
    "withdraw_checked",
    check="no_overdraft",
    countermeasure="atomic() only: the balance read covers the amount, then "
    "UPDATE ... SET balance = balance - amount",
    engines=EVERY,
    form=wallet_form,
)
def withdraw_checked(call, wallet, amount, delay):
    return withdraw(call, Wallet, wallet, amount, delay)


@endpoint(
    "withdraw_locked",
    check="no_overdraft",
    countermeasure="select_for_update() on the balance read: a row lock held until the commit",
    form=wallet_form,
)
def withdraw_locked(call, wallet, amount, delay):
    return withdraw(call, Wallet, wallet, amount, delay, lock=True)


@endpoint(
    "withdraw_conditional",
    check="no_overdraft",
    countermeasure="no read: UPDATE ... SET balance = balance - amount WHERE balance >= amount",
    engines=EVERY,
    form=wallet_form,
)
def withdraw_conditional(call, wallet, amount, delay):
    """One conditional UPDATE: the check and the act are one statement, so `delay` has no
    window to widen."""
    with transaction.atomic():
        call.mark_read()
        after = debit(Wallet, wallet, amount, covered=True)
        if after is None:
            if not Wallet.objects.filter(pk=wallet).exists():
                raise Wallet.DoesNotExist(f"no wallet {wallet}")
            return call.refused(
                f"the balance does not cover {amount}", {"read": None, "accepted": False}
            )
        row = record(Wallet, wallet, amount, after)
    return call.respond({"read": None, "accepted": True, "written": after, "debit": row.pk})


@endpoint(
    "withdraw_constrained",
    check="no_overdraft",
    countermeasure="CHECK (balance >= 0) in the database: withdraw_checked's overdrawing "
    "UPDATE fails (409 with the database's code) and its transaction rolls back",
    engines=EVERY,
    form=wallet_form,
)
def withdraw_constrained(call, wallet, amount, delay):
    return withdraw(call, ConstrainedWallet, wallet, amount, delay)


def off_call_after_count(call, doctor, delay, lock=False):
    """In one transaction: count the doctors on call (with `lock`, from every doctor's
    row read under select_for_update(), in id order); when there are at least two, wait
    `delay` and take `doctor` off call. 409 when fewer are on call."""
    with transaction.atomic():
        if lock:
            rows = Doctor.objects.select_for_update().order_by("pk")
            on_call = sum(rows.values_list("on_call", flat=True))
        else:
            on_call = Doctor.objects.filter(on_call=True).count()
        call.mark_read()
        if on_call < 2:
            return call.refused(
                f"{on_call} on call: doctor {doctor} must stay",
                {"read": on_call, "accepted": False, "doctor": doctor},
            )
        if delay:
            time.sleep(delay)
        if not Doctor.objects.filter(pk=doctor).update(on_call=False):
            raise Doctor.DoesNotExist(f"no doctor {doctor}")
    return call.respond({"read": on_call, "accepted": True, "doctor": doctor})


@endpoint(
    "off_call",
    check="one_on_call",
    countermeasure="atomic() only: count the doctors on call, then take this one off",
    engines=EVERY,
    form=doctor_form,
)
def off_call(call, doctor, delay):
    return off_call_after_count(call, doctor, delay)


@endpoint(
    "off_call_locked",
    check="one_on_call",
    countermeasure="select_for_update() on every doctor before the count: the requests "
    "count one after another",
    form=doctor_form,
)
def off_call_locked(call, doctor, delay):
    return off_call_after_count(call, doctor, delay, lock=True)
