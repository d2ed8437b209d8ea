"""Routes: /health and /inflight, then `/<name>/` (the slash optional) for every endpoint
of demo.registry."""
from django.urls import path, re_path

from demo import views
from demo.registry import endpoints

urlpatterns = [
    path("health", views.health),
    path("inflight", views.inflight),
] + [re_path(rf"^{name}/?$", e.view) for name, e in endpoints().items()]
