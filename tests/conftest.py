"""Session fixtures for the end-to-end tests: a real Label Studio and the backend under real gunicorn."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import labelstudio
import pytest


@pytest.fixture(scope="session")
def label_studio_sqlite(tmp_path_factory):
    """Label Studio 1.23 from .venv-ls on 127.0.0.1 with an admin (PAT and legacy token), on SQLite; skipped if not
    installed."""
    if not labelstudio.available():
        pytest.skip(labelstudio.MISSING_REASON)
    with labelstudio.LabelStudioServer(tmp_path_factory.mktemp("label-studio")) as server:
        yield server


@pytest.fixture(scope="session")
def label_studio(label_studio_sqlite):
    """The Label Studio most tests use: on SQLite. A module that must run on both databases overrides it with
    `on_both_databases`."""
    return label_studio_sqlite


@pytest.fixture(scope="session")
def label_studio_pg(tmp_path_factory):
    """The same Label Studio on PostgreSQL (a throwaway cluster, backend/dev/postgres.py); skipped where the server
    is not installed, except under CI=true."""
    from backend.dev import postgres

    if not labelstudio.available():
        pytest.skip(labelstudio.MISSING_REASON)
    if not postgres.available():
        if os.environ.get("CI") == "true":
            pytest.fail(postgres.MISSING_REASON)
        pytest.skip(postgres.MISSING_REASON)
    with postgres.PostgresCluster() as pg:
        with labelstudio.LabelStudioServer(
            tmp_path_factory.mktemp("label-studio-pg"), database=pg.connection.label_studio_env()
        ) as server:
            yield server


def on_both_databases(request):
    """The body of a module's `label_studio` fixture parametrized over ("sqlite", "postgresql")."""
    return request.getfixturevalue("label_studio_pg" if request.param == "postgresql" else "label_studio_sqlite")


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
