"""One Redis client per process, made on first use (after Gunicorn forked), or None
when REDIS_URL is not set."""
from django.conf import settings

_client = None

# Outstanding Celery tasks = dispatched - done (see views.inflight).
DISPATCHED = "racy:tasks:dispatched"
DONE = "racy:tasks:done"


def client():
    global _client
    if _client is None and settings.REDIS_URL:
        import redis

        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=2
        )
    return _client
