"""Tasks that read before the commit (seed 003): in one transaction, create a Job, hand its
id to a Celery task (demo.tasks.check_job) that records whether it could see the Job, wait
`delay_ms`, commit. Dispatched before the commit, the task may look for the Job too early
(TaskRun.found=False); dispatched from transaction.on_commit, it cannot.

The form is the counter endpoints' (`account` and `amount` are required, not used). The
answer adds `job`, with read and written balances of None.
"""
import time

from django.db import transaction
from redis.exceptions import RedisError

from .. import redis_client
from ..models import Job
from ..registry import endpoint
from ..tasks import check_job


def dispatch(job_pk):
    """Count the task as outstanding (GET /inflight), then send it."""
    r = redis_client.client()
    if r is None:
        raise RedisError("Redis is not deployed (REDIS_URL is unset or its host does not resolve): the endpoint needs profile redis")
    r.incr(redis_client.DISPATCHED)
    try:
        check_job.delay(job_pk)
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
        job = Job.objects.create()
        call.mark_read()
        dispatch(job.pk)
        if delay:
            time.sleep(delay)
    return call.balances(None, None, job=job.pk)


@endpoint(
    "task_on_commit",
    check="task",
    countermeasure="transaction.on_commit(): dispatched once the transaction commits",
)
def task_on_commit(call, account, amount, delay):
    with transaction.atomic():
        job = Job.objects.create()
        call.mark_read()
        transaction.on_commit(lambda: dispatch(job.pk))
        if delay:
            time.sleep(delay)
    return call.balances(None, None, job=job.pk)
