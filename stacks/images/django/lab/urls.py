"""Routes: /health and /inflight, /alive and /start_outcome/ (seed 000), then `/<name>/` (the slash optional) for every endpoint
of demo.registry."""
from django.urls import path, re_path

from demo import views
from demo.registry import endpoints

urlpatterns = [
    path("health", views.health),
    path("inflight", views.inflight),
    # seed 000's stacks
    path("alive", views.alive),
    re_path(r"^start_outcome/?$", views.start_outcome),
] + [re_path(rf"^{name}/?$", e.view) for name, e in endpoints().items()]
