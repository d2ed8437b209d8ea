"""Gunicorn settings of the lab (the entrypoint passes the rest on the command line).

The app is loaded once, in the master, and workers fork from it: a stack is ready
sooner, and a worker added by TTIN serves within milliseconds. Each worker leaves a
marker named after its pid once it can take a request; /app/workers.sh counts them.
"""
import os

preload_app = True
logger_class = "lab.gunicorn_logging.QuietLogger"
MARKERS = os.environ.get("WORKER_MARKERS", "/tmp/racy-workers")


def post_worker_init(worker):
    os.makedirs(MARKERS, exist_ok=True)
    open(os.path.join(MARKERS, str(os.getpid())), "w").close()
