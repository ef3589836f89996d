"""The gunicorn entry point: `gunicorn -c python:backend.serving.gunicorn_conf backend.serving.wsgi:app`.

Imported in the worker, not the master (no --preload), so the model is loaded after the fork and torch's
thread pools are never inherited across a fork.
"""

import logging
import os
import sys

from backend.serving.app import create_app
from backend.serving.service import Service
from backend.settings import Settings, SettingsError

logging.basicConfig(
    level=os.environ.get("LOG_LEVEL", "INFO").upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)
# Every call to Label Studio would otherwise be an INFO line, URL and query included.
logging.getLogger("httpx").setLevel(logging.WARNING)
try:
    settings = Settings.from_env()
except SettingsError as e:
    print(f"configuration error: {e}", file=sys.stderr)
    sys.exit(3)  # gunicorn stops the arbiter when a worker exits with 3 at boot
service = Service(settings)
service.start()
app = create_app(service)
