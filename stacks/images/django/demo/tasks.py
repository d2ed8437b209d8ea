"""The Celery task of the task endpoints (seed 003)."""
from lab.celery import app

from . import redis_client
from .models import Job, TaskRun


@app.task(ignore_result=True, acks_late=False, max_retries=0)
def check_job(pk):
    """Look for the Job the request created: found=False when it ran before the
    request's transaction committed. Counts itself done even when it fails."""
    try:
        found = Job.objects.filter(pk=pk).exists()
        TaskRun.objects.create(job_id=pk, found=found)
    finally:
        redis_client.client().incr(redis_client.DONE)
