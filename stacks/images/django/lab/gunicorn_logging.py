"""Gunicorn's logger without access lines for the polled /health and /inflight."""
from gunicorn.glogging import Logger

QUIET = ("/health", "/inflight")


class QuietLogger(Logger):
    def access(self, resp, req, environ, request_time):
        if environ.get("PATH_INFO") not in QUIET:
            super().access(resp, req, environ, request_time)
