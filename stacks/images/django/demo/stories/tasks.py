"""Tasks that read before the commit (seed 003): in one transaction, create a Job, hand its
id to a Celery task (demo.tasks.check_job) that records whether it could see the Job, wait
`delay_ms`, commit. Dispatched before the commit, the task may look for the Job too early
(TaskRun.found=False); dispatched from transaction.on_commit, it cannot.

The task_view_* endpoints are the article's own view: no atomic() around it, so what
decides is the ATOMIC_REQUESTS setting (the stack variable `atomic_requests`), which runs
every view in one transaction committed after the view returns:
- task_view_delay calls .delay() in the view: misses only under ATOMIC_REQUESTS;
- task_view_on_commit dispatches from transaction.on_commit(), the article's fix;
- task_view_non_atomic is the same view as task_view_delay, exempt with
  @transaction.non_atomic_requests, the article's other fix;
- task_view_delay_on_commit uses Celery's own Task.delay_on_commit() (Celery 5.4+, the
  Django fixup's task class);
- task_view_after_atomic creates the Job in an inner atomic() and dispatches after it:
  under ATOMIC_REQUESTS the inner block is only a savepoint, so "after" is still before
  the commit.
Each sleeps `delay_ms` after dispatching: the rest of the view's work.

The form is the counter endpoints' (`account` and `amount` are required, not used). The
answer adds `job`, with read and written balances of None.
"""
import time

from django.db import transaction
from .. import redis_client
from ..models import Job
from ..registry import endpoint


def redis():
    """The Redis client that counts dispatched tasks; RedisError when Redis is not deployed."""
    r = redis_client.client()
    if r is None:
        raise redis_client.not_deployed()
    return r


def check_job():
    """The Celery task, imported on first use: Celery and its broker's client cost about
    0.15 s of CPU, on the path of every start of the app, and only the task endpoints
    need them. The first dispatch of a process pays it before its send, so the window
    between the send and the request's commit is the same for every dispatch."""
    from ..tasks import check_job as task

    return task


def dispatch(job_pk):
    """Count the task as outstanding (GET /inflight), then send it."""
    r = redis()
    r.incr(redis_client.DISPATCHED)
    try:
        check_job().delay(job_pk)
    except BaseException:
        r.decr(redis_client.DISPATCHED)
        raise


@endpoint(
    "task_in_transaction",
    check="task",
    countermeasure="none: dispatched inside the transaction, before the commit",
)
def task_in_transaction(call, account, amount, delay):
    with transaction.atomic():
        job = create_and_send(call, delay, lambda job: dispatch(job.pk))
    return call.balances(None, None, job=job.pk)


@endpoint(
    "task_on_commit",
    check="task",
    countermeasure="transaction.on_commit(): dispatched once the transaction commits",
)
def task_on_commit(call, account, amount, delay):
    with transaction.atomic():
        job = create_and_send(
            call, delay, lambda job: transaction.on_commit(lambda: dispatch(job.pk))
        )
    return call.balances(None, None, job=job.pk)


def create_and_send(call, delay, send, create=Job.objects.create):
    """What every task endpoint does: `create()` a Job, `send(job)`, then the rest of the
    work (`delay`); returns the Job. The transaction around it is the caller's."""
    job = create()
    call.mark_read()
    send(job)
    if delay:
        time.sleep(delay)
    return job


def in_view(call, delay, send, create=Job.objects.create):
    """The article's view: create_and_send with no atomic() of its own, so its
    transaction, if any, is ATOMIC_REQUESTS's; answered once it returns."""
    job = create_and_send(call, delay, send, create)
    return call.balances(None, None, job=job.pk)


@endpoint(
    "task_view_delay",
    check="task",
    countermeasure="none: .delay() in the view; under ATOMIC_REQUESTS, before the commit",
)
def task_view_delay(call, account, amount, delay):
    return in_view(call, delay, lambda job: dispatch(job.pk))


@endpoint(
    "task_view_on_commit",
    check="task",
    countermeasure="transaction.on_commit(lambda: .delay()): sent once the request's transaction commits",
)
def task_view_on_commit(call, account, amount, delay):
    return in_view(call, delay, lambda job: transaction.on_commit(lambda: dispatch(job.pk)))


@endpoint(
    "task_view_non_atomic",
    check="task",
    countermeasure="@transaction.non_atomic_requests: the view is out of ATOMIC_REQUESTS",
    non_atomic_requests=True,
)
def task_view_non_atomic(call, account, amount, delay):
    return in_view(call, delay, lambda job: dispatch(job.pk))


def celery_delay_on_commit(job):
    """Celery's Task.delay_on_commit(): the send is Celery's own on_commit hook. The
    dispatch is counted by a hook registered before it (hooks run in order), so the count
    and the send happen together, at the commit."""
    r = redis()
    transaction.on_commit(lambda: r.incr(redis_client.DISPATCHED))
    check_job().delay_on_commit(job.pk)


@endpoint(
    "task_view_delay_on_commit",
    check="task",
    countermeasure="Celery's delay_on_commit(): sent once the request's transaction commits",
)
def task_view_delay_on_commit(call, account, amount, delay):
    return in_view(call, delay, celery_delay_on_commit)


@endpoint(
    "task_view_after_atomic",
    check="task",
    countermeasure="none under ATOMIC_REQUESTS: .delay() after an inner atomic(), a savepoint there",
)
def task_view_after_atomic(call, account, amount, delay):
    return in_view(call, delay, lambda job: dispatch(job.pk), create=created_in_atomic)


def created_in_atomic():
    """A Job created in an atomic() block of its own: committed when the block ends,
    unless an outer transaction (ATOMIC_REQUESTS's) makes the block a savepoint."""
    with transaction.atomic():
        return Job.objects.create()
