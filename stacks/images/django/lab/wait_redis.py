"""Wait until the Redis of REDIS_URL answers PING (the Celery worker runs this first:
the stacks start it beside Redis, and Celery's own retry waits seconds between tries)."""
import os
import socket
import sys
import time
from urllib.parse import urlparse

url = urlparse(os.environ.get("REDIS_URL") or "redis://redis:6379/0")
WAIT_S = float(os.environ.get("REDIS_WAIT_S", "120"))
deadline = time.monotonic() + WAIT_S
while True:
    try:
        with socket.create_connection((url.hostname, url.port or 6379), timeout=1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(64).startswith(b"+PONG"):
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(f"worker: Redis at {url.hostname} did not answer within {WAIT_S:.0f} s")
    time.sleep(0.02)
