"""The lab's own endpoints, outside the stories: GET /health (readiness) and GET /inflight
(what is still running, so the driver observes the database only once it is quiet). The
stories' endpoints are in demo/stories/, routed from demo.registry.
"""
import json
import os

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse

from . import middleware, redis_client


def health(request):
    """200 once the app answers, its database does, and every migration is applied (the
    app starts beside the one-shot `migrate` service and is ready only after it)."""
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as e:
        return JsonResponse({"ok": False, "error": str(e)}, status=503)
    if pending:
        return JsonResponse(
            {"ok": False, "error": f"{len(pending)} migrations not applied yet"}, status=503
        )
    return JsonResponse({"ok": True, "pid": os.getpid()})


def inflight(request):
    """Requests in flight on any replica, plus Celery tasks dispatched but not done; with
    ?burst=TOKEN, also how many requests of that burst the app accepted."""
    requests = middleware.count()
    extra = {}
    token = request.GET.get("burst")
    if token is not None:
        extra["accepted"] = middleware.accepted(token)
    outstanding = 0
    r = redis_client.client()
    if r is not None:
        try:
            dispatched, done = r.mget(redis_client.DISPATCHED, redis_client.DONE)
        except redis_client.error_class() as e:
            return JsonResponse({"error": f"redis: {e}", "requests": requests}, status=503)
        outstanding = max(0, int(dispatched or 0) - int(done or 0))
    return JsonResponse(
        {"inflight": requests + outstanding, "requests": requests, "tasks": outstanding, **extra}
    )


def alive(request):
    """200 once Gunicorn serves, whatever the database: the readiness of seed 000's
    stacks, whose app serves even when its migrations failed at start."""
    return JsonResponse({"ok": True, "pid": os.getpid()})


def start_outcome(request):
    """POST: this app's start outcome (lab/startup.py) added to racy_start as one row, and
    answered: `failed`, the `error` of the migrations, the `wait` strategy and how long it
    `waited_s`. 503 while the start has not finished."""
    if request.method != "POST":
        return JsonResponse({"error": "use POST"}, status=405)
    try:
        with open("/tmp/start-outcome.json") as f:
            outcome = json.load(f)
    except FileNotFoundError:
        return JsonResponse({"error": "the start has not finished"}, status=503)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO racy_start (failed, error) VALUES (%s, %s)",
                [1 if outcome["failed"] else 0, outcome["error"]],
            )
    except DatabaseError as e:
        return JsonResponse({"error": str(e), **outcome}, status=500)
    return JsonResponse({**outcome, "pid": os.getpid()})
