"""The lab's endpoints, one registration each: what lab/urls.py routes and what
`manage.py racy_endpoints` prints.

A story module declares an endpoint where it defines it:

    @endpoint("atomic_long_delay", check="counter", countermeasure="atomic() only",
              engines=EVERY)
    def atomic_long_delay(call, account, amount, delay): ...

Its path is `/<name>/`, its method POST. `check` is what its race breaks, as the stacks'
`x-racy.endpoints` say it: counter, unique, task, or the name of an invariant the stack
file defines in SQL (`x-racy.invariants`: no_overdraft, one_on_call). `engines` are the
databases whose stacks list it: a test (tests/it/endpoints.rs) holds each compose file's
list to this registry.
"""
from dataclasses import dataclass
from typing import Callable

from django.db import transaction

from . import envelope

# the built-in checks, then the invariants the stack files define
CHECKS = ("counter", "unique", "task", "no_overdraft", "one_on_call")
# The client-server databases: every story runs there. The SQLite stack carries SQLite's
# own story (deferred and immediate transactions) and the lock scopes; it has no Celery
# worker, and select_for_update() does nothing on SQLite.
SERVERS = ("mysql", "postgres")
EVERY = ("mysql", "postgres", "sqlite")
SQLITE = ("sqlite",)


@dataclass(frozen=True)
class Endpoint:
    """One endpoint: its name, what its race breaks, its countermeasure in words, the
    database engines whose stacks list it, and its Django view."""

    name: str
    check: str
    countermeasure: str
    engines: tuple
    view: Callable
    method: str = "POST"

    @property
    def path(self):
        return f"/{self.name}/"

    def describe(self):
        """The endpoint as `manage.py racy_endpoints` prints it."""
        return {
            "name": self.name,
            "path": self.path,
            "method": self.method,
            "check": self.check,
            "countermeasure": self.countermeasure,
            "engines": list(self.engines),
        }


_registry = {}


def endpoint(
    name,
    *,
    check,
    countermeasure,
    engines=SERVERS,
    form=envelope.counter_form,
    non_atomic_requests=False,
):
    """Registers the decorated `body(call, **fields)` as endpoint `name`; `form(request)`
    parses its form fields (by default `account`, `amount`, `delay_ms`). With
    `non_atomic_requests`, its view is exempt from ATOMIC_REQUESTS, as Django's
    @transaction.non_atomic_requests makes a view."""
    if check not in CHECKS:
        raise ValueError(f"endpoint {name}: check {check!r} is not one of {CHECKS}")
    if not set(engines) <= set(EVERY):
        raise ValueError(f"endpoint {name}: engines {engines!r} are not among {EVERY}")

    def register(body):
        if name in _registry:
            raise ValueError(f"endpoint {name} is registered twice")
        view = envelope.view(name, body, form)
        if non_atomic_requests:
            view = transaction.non_atomic_requests(view)
        _registry[name] = Endpoint(name, check, countermeasure, tuple(engines), view)
        return body

    return register


def endpoints():
    """Every endpoint by name, in the order the stories declare them."""
    # Importing the stories registers their endpoints; they import this module, so not
    # at the top.
    from . import stories  # noqa: F401

    return dict(_registry)
