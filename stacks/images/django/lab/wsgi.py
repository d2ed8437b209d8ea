import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lab.settings")
application = get_wsgi_application()
# The routes and every view loaded here, in Gunicorn's master (preload_app): each worker
# forks with them instead of loading them on its first request, so the first burst after
# a start does not meet workers still importing.
ROUTES = get_resolver().url_patterns
