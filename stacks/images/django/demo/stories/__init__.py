"""The lab's endpoints, one module per race of the seeds:
- lost_update: read -> delay -> write of a counter, and the countermeasures in the
  database (transactions, row locks, F expressions, compare-and-swap, BEGIN IMMEDIATE);
- get_or_create: get-or-create of a unique name;
- locks: the read -> delay -> write inside application locks of growing scope;
- tasks: a Celery task dispatched inside a transaction, or once it commits;
- check_then_act: a debit checked against the balance read before it (overdraft), and
  doctors going off call after counting who is on call (write skew).
Importing this package registers every endpoint (demo.registry), in this order.
"""
from . import lost_update, get_or_create, locks, tasks, check_then_act  # noqa: F401  (not sorted)
