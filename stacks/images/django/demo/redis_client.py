"""One Redis client per process, made on first use (after Gunicorn forked), or None
when REDIS_URL is not set or its host does not resolve: Redis is started only for the
endpoints that need it (compose profile `redis`), and without it no task was dispatched
and no lease can be taken."""
import socket
from urllib.parse import urlparse

from django.conf import settings

_client = None

# Outstanding Celery tasks = dispatched - done (see views.inflight).
DISPATCHED = "racy:tasks:dispatched"
DONE = "racy:tasks:done"


def deployed():
    """Whether REDIS_URL names a host that resolves (asked each time until it does)."""
    host = urlparse(settings.REDIS_URL).hostname
    if not host:
        return False
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return True


def client():
    global _client
    if _client is None and settings.REDIS_URL and deployed():
        import redis

        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=2
        )
    return _client


def error_class():
    """redis's RedisError, imported on first use like the client: importing redis costs
    about 0.1 s of CPU, on the path of every start of a stack that never deploys Redis."""
    from redis.exceptions import RedisError

    return RedisError


def not_deployed():
    """The error of an endpoint that needs Redis where it is not deployed."""
    return error_class()(
        "Redis is not deployed (REDIS_URL is unset or its host does not resolve): "
        "the endpoint needs profile redis"
    )
