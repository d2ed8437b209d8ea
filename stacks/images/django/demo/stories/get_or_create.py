"""get_or_create (seed 004): every request of a burst asks for the same new `name`, inside
one transaction (as with ATOMIC_REQUESTS, so its snapshot is what the isolation level
makes it), with `delay_ms` between the get and the create. The answer says whether this
request created the row, and `retries` 1 when an IntegrityError was turned into a success.
"""
import time

from django.db import IntegrityError, transaction

from ..envelope import BadInput, delay_field
from ..models import LooseThing, Thing
from ..registry import endpoint


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


def create_then_get(model, name, delay):
    """The safe order: no read first; create, and fetch when the constraint refuses."""
    if delay:
        time.sleep(delay)
    return create_or_fetch(model, name)


def get_or_create_in_transaction(call, model, how, name, delay):
    """`how(model, name, delay)` in one transaction; answers the row's id, whether this
    request created it, and whether a conflict was hidden."""
    with transaction.atomic():
        call.mark_read()
        thing, created, hidden = how(model, name, delay)
    return call.respond({"id": thing.pk, "created": created, "retries": 1 if hidden else 0})


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
