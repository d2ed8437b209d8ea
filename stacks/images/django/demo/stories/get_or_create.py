"""get_or_create (seed 004): every request of a burst asks for the same new `name`, inside
one transaction (as with ATOMIC_REQUESTS, so its snapshot is what the isolation level
makes it), with `delay_ms` between the get and the create. The answer says whether this
request created the row, and in `retries` how many IntegrityErrors it turned into a
success or retried after.

Beside Django's get_or_create and the create-first fix, the other answers of the seed's
thread: select_for_update() before the create (with no row yet there is nothing to lock),
and catching the IntegrityError to retry after a short wait, inside the request's
transaction (its snapshot does not move) or in a new transaction each time.
"""
import time

from django.db import IntegrityError, transaction

from ..envelope import BadInput, delay_field
from ..models import LooseThing, Thing
from ..registry import endpoint

# The thread's "retry once or twice after waiting a small amount of time".
RETRIES = 2
RETRY_WAIT = 0.05  # seconds


def name_form(request):
    """The form of these endpoints: `name` (required), `delay_ms`."""
    name = request.POST.get("name", "").strip()
    if not name:
        raise BadInput("form field 'name' is required")
    return {"name": name, "delay": delay_field(request)}


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


def lock_then_create(model, name, delay):
    """The thread's select_for_update_or_create: lock the row when there is one, else
    create it. With no row there is nothing to lock, so concurrent creators all get past
    the select; the create is not caught."""
    thing = model.objects.select_for_update().filter(name=name).first()
    if thing is not None:
        return thing, False, False
    if delay:
        time.sleep(delay)
    return model.objects.create(name=name), True, False


def retrying(model, name, delay):
    """get_then_create in a savepoint; on an IntegrityError wait RETRY_WAIT and try again,
    up to RETRIES times, in the same transaction. `hidden` counts the conflicts."""
    conflicts = 0
    while True:
        try:
            with transaction.atomic():
                thing, created, hidden = get_then_create(model, name, 0 if conflicts else delay)
            return thing, created, conflicts + hidden
        except IntegrityError:
            conflicts += 1
            if conflicts > RETRIES:
                raise
            time.sleep(RETRY_WAIT)


def create_then_get(model, name, delay):
    """The safe order: no read first; create, and fetch when the constraint refuses."""
    if delay:
        time.sleep(delay)
    return create_or_fetch(model, name)


def get_or_create_in_transaction(call, model, how, name, delay, conflicts=0):
    """`how(model, name, delay)` in one transaction; answers the row's id, whether this
    request created it, and how many conflicts were hidden: `conflicts` met before this
    transaction, plus `how`'s third value (a count, or whether one was)."""
    with transaction.atomic():
        call.mark_read()
        thing, created, hidden = how(model, name, delay)
    return call.respond(
        {"id": thing.pk, "created": created, "retries": conflicts + int(hidden)}
    )


@endpoint(
    "get_or_create",
    check="unique",
    countermeasure="unique constraint; get, create, and on IntegrityError get again",
    form=name_form,
)
def get_or_create(call, name, delay):
    return get_or_create_in_transaction(call, Thing, get_then_create, name, delay)


@endpoint(
    "get_or_create_no_unique",
    check="unique",
    countermeasure="none: get then create, no unique constraint",
    form=name_form,
)
def get_or_create_no_unique(call, name, delay):
    return get_or_create_in_transaction(call, LooseThing, get_then_create, name, delay)


@endpoint(
    "create_or_get",
    check="unique",
    countermeasure="unique constraint; create first, on IntegrityError fetch",
    form=name_form,
)
def create_or_get(call, name, delay):
    return get_or_create_in_transaction(call, Thing, create_then_get, name, delay)


@endpoint(
    "select_for_update_or_create",
    check="unique",
    countermeasure="unique constraint; select_for_update().filter().first(), create when "
    "nothing was found",
    form=name_form,
)
def select_for_update_or_create(call, name, delay):
    return get_or_create_in_transaction(call, Thing, lock_then_create, name, delay)


@endpoint(
    "select_for_update_or_create_no_unique",
    check="unique",
    countermeasure="none but select_for_update().filter().first(), create when nothing was "
    "found",
    form=name_form,
)
def select_for_update_or_create_no_unique(call, name, delay):
    return get_or_create_in_transaction(call, LooseThing, lock_then_create, name, delay)


@endpoint(
    "get_or_create_retry",
    check="unique",
    countermeasure=f"unique constraint; get_or_create, on IntegrityError wait "
    f"{RETRY_WAIT * 1000:.0f} ms and retry (up to {RETRIES} times) in the same transaction",
    form=name_form,
)
def get_or_create_retry(call, name, delay):
    return get_or_create_in_transaction(call, Thing, retrying, name, delay)


@endpoint(
    "get_or_create_retry_transaction",
    check="unique",
    countermeasure=f"unique constraint; get_or_create in a transaction, on IntegrityError "
    f"wait {RETRY_WAIT * 1000:.0f} ms and retry (up to {RETRIES} times) in a new one",
    form=name_form,
)
def get_or_create_retry_transaction(call, name, delay):
    """Each attempt is a transaction of its own, so a retry reads a new snapshot."""
    conflicts = 0
    while True:
        try:
            return get_or_create_in_transaction(
                call, Thing, get_then_create, name, 0 if conflicts else delay, conflicts
            )
        except IntegrityError:
            conflicts += 1
            if conflicts > RETRIES:
                raise
            time.sleep(RETRY_WAIT)
