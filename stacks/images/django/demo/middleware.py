"""Counts the API requests being processed by any worker of any replica.

Each request holds a marker file in INFLIGHT_DIR (a volume every replica mounts) locked
with flock(LOCK_EX) for as long as it runs. GET /inflight tries flock(LOCK_EX|LOCK_NB) on
every marker: a locked marker is a request in flight; a lockable one belongs to a worker
that died mid-request (its lock went with it) and is removed. The driver polls /inflight
after a burst so it observes the database only once every request has finished,
including requests whose client already gave up.
"""
import fcntl
import itertools
import os
import socket
import time

DIR = os.environ.get("INFLIGHT_DIR", "/tmp/racy-inflight")
os.makedirs(DIR, exist_ok=True)
_seq = itertools.count()
UNTRACKED = ("/health", "/inflight")
# A marker is created under this prefix, locked, then renamed into place, so a counter
# never sees an unlocked marker of a live request.
TMP = ".tmp-"


def _name():
    return f"{socket.gethostname()}-{os.getpid()}-{next(_seq)}"


def inflight(get_response):
    def middleware(request):
        if request.path in UNTRACKED:
            return get_response(request)
        name = _name()
        tmp = os.path.join(DIR, TMP + name)
        marker = os.path.join(DIR, name)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(tmp, marker)
            try:
                return get_response(request)
            finally:
                _unlink(marker)
        finally:
            os.close(fd)

    return middleware


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def count():
    """Markers still locked by their request; stale ones (of dead workers) are removed."""
    n = 0
    now = time.time()
    for name in os.listdir(DIR):
        path = os.path.join(DIR, name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # finished meanwhile
        try:
            if name.startswith(TMP):
                # a request starting right now; an old one was left by a worker killed
                # in that instant
                if now - os.fstat(fd).st_mtime > 60:
                    _unlink(path)
                else:
                    n += 1
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                n += 1
                continue
            _unlink(path)
        finally:
            os.close(fd)
    return n
