"""Gunicorn settings: one worker holding the model, threads sharing it; PORT, THREADS and TIMEOUT from the env."""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '9090')}"
workers = 1  # the model lives in one process; more workers would each load a copy
# Threads mostly wait for the one model thread; enough of them keep webhooks (which Label Studio gives 1 s) from
# queueing behind /predict calls.
threads = int(os.environ.get("THREADS", "16"))
worker_class = "gthread"
timeout = int(os.environ.get("TIMEOUT", "300"))  # a large /predict batch may take minutes on a CPU
graceful_timeout = 10
preload_app = False
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
