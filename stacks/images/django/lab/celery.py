"""The Celery app of the task endpoints: Redis (REDIS_URL) as broker, no result backend.

Run with `celery -A lab.celery worker`. Tasks are acknowledged when received and never
retried, so each dispatch runs at most once.
"""
import os
import pathlib

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lab.settings")

app = Celery("lab", include=["demo.tasks"])
app.conf.update(
    broker_url=os.environ.get("REDIS_URL") or "redis://redis:6379/0",
    broker_connection_retry_on_startup=True,
    result_backend=None,
    task_ignore_result=True,
    task_acks_late=False,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
    worker_enable_remote_control=False,
)

READY = pathlib.Path(os.environ.get("CELERY_READY_FILE", "/tmp/celery-ready"))


@worker_ready.connect
def _mark_ready(**_):
    """The worker's healthcheck: this file exists once the worker consumes."""
    READY.touch()
