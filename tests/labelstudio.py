"""Test support: the package's Label Studio server (backend/dev/labelstudio.py) on a free port in a temporary directory.

Label Studio pins packages that clash with the backend's (transformers), so it lives in its own virtualenv
and runs as a separate process; the tests speak to it over HTTP only.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import warm

from backend.dev import labelstudio as ls_server
from backend.dev.labelstudio import LS_BIN, ROOT, LocalLabelStudioError, User, available
from backend.dev.processes import free_port

SYNC_SCRIPT = warm.labelloop("sync-project")
MISSING_REASON = (
    f"Label Studio is not installed in {LS_BIN.parent.parent.name}: "
    "make labelstudio (python3 -m venv .venv-ls && .venv-ls/bin/pip install -r requirements/labelstudio.txt)"
)
needs_ls = pytest.mark.skipif(not available(), reason=MISSING_REASON)


class LabelStudioServer(ls_server.LabelStudioServer):
    """`with LabelStudioServer(tmp) as ls:` Label Studio on a free port with a test admin who has both token kinds."""

    def __init__(
        self,
        data_dir: Path,
        admin_email: str = "admin@example.com",
        admin_password: str = "admin-pass-1234",
        database: dict[str, str] | None = None,
    ):
        # A constant legacy token stays right when a data directory is started again.
        super().__init__(
            data_dir,
            port=free_port(),
            admin_email=admin_email,
            admin_password=admin_password,
            legacy_token="labelloop-test-legacy-token",
            database=database,
        )

    def create_annotator(self, email: str, password: str) -> User:
        return self.create_user(email, password, first_name="Annotator")

    def add_members(self, project_id: int, emails: list[str]) -> int:
        """Record users as project members, as Enterprise teams do (the open-source edition never does, and has no
        API for it): Label Studio's own code in its Django shell. Returns project.annotators().count()."""
        code = (
            "from projects.models import Project; from users.models import User; "
            f"p = Project.objects.get(id={int(project_id)}); "
            f"[p.add_collaborator(u) for u in User.objects.filter(email__in={list(emails)!r})]; "
            "print('annotators', p.annotators().count())"
        )
        manage = next(LS_BIN.parent.parent.glob("lib/python*/site-packages/label_studio/manage.py"))
        done = subprocess.run(
            [str(LS_BIN.parent / "python"), str(manage), "shell", "-c", code],
            cwd=manage.parent,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        counted = [line for line in done.stdout.splitlines() if line.startswith("annotators ")]
        if done.returncode or not counted:
            raise LocalLabelStudioError(f"adding project members failed: {(done.stdout + done.stderr)[-500:]}")
        return int(counted[-1].split()[1])


def run_sync(*args: str, url: str, api_key: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """labelloop sync-project as a user runs it, in the main venv, with the connection in the environment."""
    env = {**os.environ, "LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": api_key}
    return warm.run([*SYNC_SCRIPT, *args], cwd=ROOT, env=env, timeout=timeout)
