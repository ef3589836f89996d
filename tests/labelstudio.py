"""Test support: a real Label Studio from .venv-ls on 127.0.0.1, headless, in a temporary data directory.

Label Studio pins packages that clash with the backend's (transformers), so it lives in its own virtualenv
and runs as a separate process; the tests speak to it over HTTP only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
LS_BIN = ROOT / ".venv-ls" / "bin" / "label-studio"
SYNC_SCRIPT = ROOT / "scripts" / "sync_project.py"
MISSING_REASON = (
    f"Label Studio is not installed in {LS_BIN.parent.parent.name}: "
    "python3 -m venv .venv-ls && .venv-ls/bin/pip install -r requirements/labelstudio.txt"
)


def available() -> bool:
    return LS_BIN.exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class User:
    id: int
    email: str
    password: str
    token: str  # a Personal Access Token


class LabelStudioError(RuntimeError):
    pass


class LabelStudioServer:
    """`with LabelStudioServer(tmp) as ls:` starts Label Studio, logs the admin in, and stops it at exit."""

    def __init__(self, data_dir: Path, admin_email: str = "admin@example.com", admin_password: str = "admin-pass-1234"):
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir / "label-studio.log"
        self.admin_email = admin_email
        self.admin_password = admin_password
        # Set at the first start only; a constant keeps it right when a data directory is started again.
        self.legacy_token = "labelloop-test-legacy-token"
        self.admin: User | None = None
        self.startup_seconds = 0.0
        self._proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        """The environment for every `label-studio` command on this data directory."""
        return {
            **os.environ,
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir / "ls-data"),
            "LABEL_STUDIO_USERNAME": self.admin_email,
            "LABEL_STUDIO_PASSWORD": self.admin_password,
            "LABEL_STUDIO_USER_TOKEN": self.legacy_token,
            # Legacy tokens are accepted only when enabled at the first start.
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "COLLECT_ANALYTICS": "false",
            "LATEST_VERSION_CHECK": "false",
            # Both must be off for Label Studio to call a backend on 127.0.0.1.
            "ML_BLOCK_LOCAL_IP": "false",
            "SSRF_PROTECTION_ENABLED": "false",
        }

    def start(self, timeout: float = 180.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with self.log_path.open("w") as log:
            self._proc = subprocess.Popen(
                [str(LS_BIN), "start", "--no-browser", "--internal-host", "127.0.0.1", "-p", str(self.port)],
                cwd=self.data_dir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches anything it spawns
            )
        try:
            self._wait_healthy(started + timeout)
            self.startup_seconds = time.monotonic() - started
            self.admin = User(
                id=self._whoami(self.login(self.admin_email, self.admin_password)),
                email=self.admin_email,
                password=self.admin_password,
                token=self.create_token(self.admin_email, self.admin_password),
            )
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, deadline: float) -> None:
        while True:
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet: migrations run first
                pass
            if self._proc.poll() is not None:
                raise LabelStudioError(f"Label Studio exited with {self._proc.returncode}; log:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise LabelStudioError(f"Label Studio was not healthy in time; log:\n{self.log_tail()}")
            time.sleep(0.5)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def __enter__(self) -> "LabelStudioServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def login(self, email: str, password: str) -> requests.Session:
        """A browser-like session: the login form's CSRF cookie, then email and password posted to it."""
        session = requests.Session()
        session.get(f"{self.url}/user/login/", timeout=10).raise_for_status()
        answer = session.post(
            f"{self.url}/user/login/",
            data={"email": email, "password": password, "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")},
            headers={"Referer": f"{self.url}/user/login/"},
            allow_redirects=False,
            timeout=10,
        )
        # Success redirects; a wrong password re-renders the form with 200.
        if answer.status_code != 302:
            raise LabelStudioError(f"login as {email} failed (HTTP {answer.status_code})")
        # Session-authenticated API writes need the CSRF token echoed in a header.
        session.headers.update({"X-CSRFToken": session.cookies.get("csrftoken", ""), "Referer": f"{self.url}/"})
        return session

    def _whoami(self, session: requests.Session) -> int:
        answer = session.get(f"{self.url}/api/current-user/whoami", timeout=10)
        answer.raise_for_status()
        return int(answer.json()["id"])

    def create_token(self, email: str, password: str) -> str:
        """The user's Personal Access Token, made on first use and kept in the data directory.

        Label Studio allows one live token per user (a second POST answers 409) and never shows a token
        again, so a restart on the same data directory must reuse the saved one.
        """
        saved_path = self.data_dir / "tokens.json"
        saved = json.loads(saved_path.read_text()) if saved_path.exists() else {}
        if email not in saved:
            answer = self.login(email, password).post(f"{self.url}/api/token/", timeout=10)
            if answer.status_code != 201:
                raise LabelStudioError(
                    f"creating a token for {email} failed (HTTP {answer.status_code}): {answer.text[:200]}"
                )
            saved[email] = answer.json()["token"]
            saved_path.write_text(json.dumps(saved))
        return saved[email]

    def create_annotator(self, email: str, password: str) -> User:
        """A second user in the admin's organization who can log in and has a token of their own."""
        admin = self.login(self.admin_email, self.admin_password)
        answer = admin.post(
            f"{self.url}/api/users/",
            json={"email": email, "username": email.split("@")[0], "first_name": "Annotator"},
            timeout=10,
        )
        if answer.status_code != 201:
            raise LabelStudioError(f"creating user {email} failed (HTTP {answer.status_code}): {answer.text[:200]}")
        # The users API ignores passwords; the management command sets one. Its --username is the email, and
        # it exits 0 even when nobody matches, hence the check of its output.
        done = subprocess.run(
            [str(LS_BIN), "reset_password", "--username", email, "--password", password],
            cwd=self.data_dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if "successfully" not in done.stdout + done.stderr:
            raise LabelStudioError(f"reset_password for {email} failed: {(done.stdout + done.stderr)[-500:]}")
        return User(
            id=int(answer.json()["id"]), email=email, password=password, token=self.create_token(email, password)
        )


def run_sync(*args: str, url: str, api_key: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """scripts/sync_project.py as a user runs it, in the main venv, with the connection in the environment."""
    env = {**os.environ, "LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": api_key}
    return subprocess.run(
        [sys.executable, str(SYNC_SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
