import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lab.settings")
application = get_wsgi_application()

# This worker has loaded the app and is about to serve: leave a marker named after its
# pid, so that /app/workers.sh can count the workers ready to serve (a worker Gunicorn
# adds on TTIN counts once it can really take a request).
_markers = os.environ.get("WORKER_MARKERS", "/tmp/racy-workers")
os.makedirs(_markers, exist_ok=True)
open(os.path.join(_markers, str(os.getpid())), "w").close()
