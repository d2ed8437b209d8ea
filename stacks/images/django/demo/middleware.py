"""Counts the API requests being processed by any worker of this container.

Each request holds a marker file in INFLIGHT_DIR named after its worker's pid; GET
/inflight counts the markers of live processes. The driver polls it after a burst so it
observes the database only once every request has finished, including requests whose
client already gave up.
"""
import itertools
import os

DIR = os.environ.get("INFLIGHT_DIR", "/tmp/racy-inflight")
os.makedirs(DIR, exist_ok=True)
_seq = itertools.count()
UNTRACKED = ("/health", "/inflight")


def inflight(get_response):
    def middleware(request):
        if request.path in UNTRACKED:
            return get_response(request)
        marker = os.path.join(DIR, f"{os.getpid()}-{next(_seq)}")
        open(marker, "w").close()
        try:
            return get_response(request)
        finally:
            try:
                os.unlink(marker)
            except FileNotFoundError:
                pass

    return middleware


def count():
    """Markers whose worker is still alive (a killed worker's markers do not count)."""
    n = 0
    for name in os.listdir(DIR):
        pid = int(name.split("-", 1)[0])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        n += 1
    return n
