"""Counts the API requests being processed by any worker of any replica.

Each request holds a marker file in INFLIGHT_DIR (a volume every replica mounts) locked
with flock(LOCK_EX) for as long as it runs. GET /inflight tries flock(LOCK_EX|LOCK_NB) on
every marker: a locked marker is a request in flight; a lockable one belongs to a worker
that died mid-request (its lock went with it) and is removed. The driver polls /inflight
after a burst so it observes the database only once every request has finished,
including requests whose client already gave up.

A marker alone cannot see a request still waiting in Gunicorn's listen backlog: between
two requests a busy worker holds no marker. So every request of a burst carries the
burst's token (header X-Racy-Burst), and each one the app accepts leaves a file named
after it in ACCEPTED_DIR; GET /inflight?burst=TOKEN counts them, and the driver waits
until the app has accepted every request it sent and none is in flight.
"""
import fcntl
import itertools
import os
import re
import socket
import time

DIR = os.environ.get("INFLIGHT_DIR", "/tmp/racy-inflight")
os.makedirs(DIR, exist_ok=True)
# beside DIR, not in it: count() treats every entry of DIR as a marker
ACCEPTED_DIR = DIR.rstrip("/") + ".accepted"
os.makedirs(ACCEPTED_DIR, exist_ok=True)
# accepted files of older bursts are removed after this many seconds
ACCEPTED_KEEP_S = 600
TOKEN = re.compile(r"^[A-Za-z0-9-]{1,64}$")
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
            # only now: a request counted as accepted is already counted as in flight
            _accept(request.headers.get("X-Racy-Burst", ""), name)
            try:
                return get_response(request)
            finally:
                _unlink(marker)
        finally:
            os.close(fd)

    return middleware


def _accept(token, name):
    """Leave a file that says this request of burst `token` reached the app."""
    if not TOKEN.match(token):
        return
    fd = os.open(os.path.join(ACCEPTED_DIR, f"{token}.{name}"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)


def accepted(token):
    """How many requests of burst `token` the app has accepted, on any replica; files of
    bursts older than ACCEPTED_KEEP_S are removed on the way."""
    if not TOKEN.match(token):
        return None
    n = 0
    now = time.time()
    prefix = token + "."
    for name in os.listdir(ACCEPTED_DIR):
        if name.startswith(prefix):
            n += 1
            continue
        path = os.path.join(ACCEPTED_DIR, name)
        try:
            if now - os.stat(path).st_mtime > ACCEPTED_KEEP_S:
                _unlink(path)
        except FileNotFoundError:
            pass
    return n


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
