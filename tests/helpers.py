"""Shared test helpers: a Predictor on the tiny model, a free port, a gunicorn server on 127.0.0.1 (the last two
from backend/dev/processes.py, as the demo and the benchmarks start theirs)."""

from __future__ import annotations

import time
from pathlib import Path

from backend.dev import processes
from backend.dev.processes import free_port  # noqa: F401 (the tests' import of it)
from backend.dev.tiny_model import predictor as tiny_predictor  # noqa: F401 (the tests' import of it)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = (ROOT / "label_config" / "sentiment.xml").read_text()


def wait_for(what: str, check, timeout: float = 240.0, every: float = 1.0):
    """check()'s first truthy value, polled every `every` s; an AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def gunicorn(env: dict[str, str], log_path: Path, wait: float = 120.0):
    """`with gunicorn(env, log) as (url, proc):` the backend exactly as `make serve` starts it, on 127.0.0.1 and a
    free port, healthy; stopped afterwards. RuntimeError with the log's end if it never becomes healthy."""
    return processes.serving(env, log_path, timeout=wait)
