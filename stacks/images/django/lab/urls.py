from django.urls import path, re_path

from demo import views

urlpatterns = [
    path("health", views.health),
    path("inflight", views.inflight),
] + [re_path(rf"^{name}/?$", view) for name, view in views.ENDPOINTS.items()]
