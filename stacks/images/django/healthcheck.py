"""Container healthcheck of the app: exit 0 only when GET /health answers 200 within 2 s.
Quick and side-effect free (the driver also runs it via exec to judge each replica)."""
import sys
import urllib.request

try:
    with urllib.request.urlopen("http://127.0.0.1:8000/health", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
