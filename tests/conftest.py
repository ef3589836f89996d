"""Session fixtures for the end-to-end tests: a real Label Studio and the backend under real gunicorn."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import labelstudio


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """Label Studio 1.23 from .venv-ls on 127.0.0.1 with an admin (PAT and legacy token); skipped if not installed."""
    if not labelstudio.available():
        pytest.skip(labelstudio.MISSING_REASON)
    with labelstudio.LabelStudioServer(tmp_path_factory.mktemp("label-studio")) as server:
        yield server


@dataclass(frozen=True)
class BackendServer:
    url: str
    data_dir: Path
    log_path: Path
    ready_seconds: float


@pytest.fixture(scope="session")
def backend_server(tmp_path_factory):
    """The backend as `make serve` runs it, with the default (embedded) model, on 127.0.0.1."""
    from helpers import gunicorn  # imported here: it loads torch, which tests without a backend do not need

    tmp = tmp_path_factory.mktemp("backend")
    started = time.monotonic()
    with gunicorn({"DATA_DIR": str(tmp / "data")}, tmp / "gunicorn.log", wait=120.0) as (url, _):
        yield BackendServer(url, tmp / "data", tmp / "gunicorn.log", time.monotonic() - started)
