"""A local Label Studio for the demo and the tests: started headless on 127.0.0.1 from .venv-ls, with SQLite in a
data directory, an admin and a Personal Access Token made without prompts, and stopped cleanly.

Label Studio pins packages that clash with the backend's (transformers), so it lives in its own virtualenv and runs
as a separate process; everything here speaks to it over HTTP, except two management commands run from .venv-ls.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import requests

from backend.dev import processes
from backend.errors import LabelloopError
from backend.paths import ROOT

LS_BIN = ROOT / ".venv-ls" / "bin" / "label-studio"
TOKENS_FILE = "tokens.json"
LOG_FILE = "label-studio.log"
DATABASE_FILE = "label_studio.sqlite3"

# Inherited variables Label Studio would read as its own settings (its get_env also accepts bare names, so a
# HOST=0.0.0.0 meant for gunicorn would become Label Studio's public host name).
_FOREIGN_ENV = ("HOST", "PORT", "DJANGO_DB", "DATABASE_NAME", "USERNAME", "PASSWORD", "USER_TOKEN", "DEBUG")

TOKEN_PATH = "/api/token/"


class LocalLabelStudioError(LabelloopError, RuntimeError):
    """The Label Studio started here cannot be started or used; the message is one line saying why (plus its log
    where useful). Not backend.labelstudio.client.LabelStudioError, which is about any Label Studio's API."""

    http_status = 503


class LoginError(LocalLabelStudioError):
    """Label Studio refused an email and password."""

    http_status = 401


def transient(status: int) -> bool:
    """Whether an HTTP status says "busy or restarting, try later" rather than no (5xx, and 429 Too Many Requests)."""
    return status >= 500 or status == 429


@dataclass(frozen=True)
class User:
    id: int
    email: str
    password: str
    token: str  # a Personal Access Token


def available(ls_bin: str | os.PathLike | None = None) -> bool:
    return Path(ls_bin or LS_BIN).exists()


class LabelStudioServer:
    """`with LabelStudioServer(dir, port) as ls:` starts Label Studio, logs the admin in, and stops it at exit.

    `data_dir` is Label Studio's own data directory (SQLite database, media); the server's log and the saved
    tokens are kept in it too. Starting again on the same directory is a warm start: no migrations, same users,
    same token.

    Requests for the login and the token give up after `timeout` seconds and are tried `tries` times in all,
    `retry_delay` seconds apart at first, doubling: a slow or restarting Label Studio is waited for, not taken
    for a revoked token.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        *,
        port: int = 8080,
        admin_email: str = "admin@example.com",
        admin_password: str = "",
        legacy_token: str | None = None,
        ls_bin: str | os.PathLike | None = None,
        timeout: float = 10.0,
        tries: int = 4,
        retry_delay: float = 0.5,
        database: dict[str, str] | None = None,
    ):
        if not admin_password:
            raise ValueError("admin_password is required")
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = self.data_dir / LOG_FILE
        self.tokens_path = self.data_dir / TOKENS_FILE
        self.admin_email = admin_email
        self.admin_password = admin_password
        # Legacy tokens work only if enabled at the first start; None leaves them off (Personal Access Tokens only).
        self.legacy_token = legacy_token
        self.ls_bin = Path(ls_bin or LS_BIN)
        self.timeout = timeout
        self.tries = max(1, tries)
        self.retry_delay = retry_delay
        # Label Studio's database settings (backend/dev/postgres.py's Connection.label_studio_env()); None: SQLite
        # in the data directory.
        self.database = database
        self.admin: User | None = None
        self.first_start = False  # set by launch(): True when the database had to be created
        self.startup_seconds = 0.0
        self._proc: subprocess.Popen | None = None
        self._launched_at = 0.0

    @property
    def env(self) -> dict[str, str]:
        """The environment for every `label-studio` command on this data directory."""
        inherited = {
            k: v
            for k, v in os.environ.items()
            if k not in _FOREIGN_ENV and not k.startswith(("LABEL_STUDIO_", "HEARTEX_"))
        }
        env = {
            **inherited,
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
            **(self.database or {"DJANGO_DB": "sqlite", "DATABASE_NAME": str(self.data_dir / DATABASE_FILE)}),
            "LABEL_STUDIO_USERNAME": self.admin_email,
            "LABEL_STUDIO_PASSWORD": self.admin_password,
            "COLLECT_ANALYTICS": "false",
            "LATEST_VERSION_CHECK": "false",
            # Both must be off for Label Studio to call a backend on 127.0.0.1: with one alone it answers 403.
            "ML_BLOCK_LOCAL_IP": "false",
            "SSRF_PROTECTION_ENABLED": "false",
        }
        if self.legacy_token:
            env["LABEL_STUDIO_USER_TOKEN"] = self.legacy_token
            env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] = "true"
        return env

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def launch(self) -> None:
        """Start the process and return at once; wait_ready() finishes the start."""
        if not available(self.ls_bin):
            raise LocalLabelStudioError(
                f"Label Studio is not installed ({self.ls_bin} is missing): run `make labelstudio`"
            )
        # Label Studio would silently move to the next free port; better to say so than talk to someone else.
        if not processes.port_free(self.port):
            raise LocalLabelStudioError(
                f"port {self.port} on 127.0.0.1 is in use; stop what listens there or pick another"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.first_start = not (self.tokens_path if self.database else self.data_dir / DATABASE_FILE).exists()
        self.startup_seconds = 0.0
        self._launched_at = time.monotonic()
        with self.log_path.open("a") as log:
            self._proc = subprocess.Popen(
                [str(self.ls_bin), "start", "--no-browser", "--internal-host", "127.0.0.1", "-p", str(self.port)],
                cwd=self.data_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,  # never wait at a prompt
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stop() reaches anything it spawns, Ctrl-C goes to us only
            )

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Wait for /health, then log the admin in and get their token."""
        deadline = self._launched_at + timeout
        while not self.poll_healthy():
            if time.monotonic() > deadline:
                raise LocalLabelStudioError(
                    f"Label Studio was not healthy in time; see {self.log_path}\n{self.log_tail()}"
                )
            time.sleep(0.5)
        session = self.login(self.admin_email, self.admin_password)
        self.admin = User(
            id=self._whoami(session),
            email=self.admin_email,
            password=self.admin_password,
            token=self.create_token(self.admin_email, self.admin_password),
        )

    def start(self, timeout: float = 180.0) -> None:
        try:
            self.launch()
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def poll_healthy(self) -> bool:
        """One look at /health (it answers once migrations are done); LocalLabelStudioError if the process has
        exited."""
        if self._proc is None or self._proc.poll() is not None:
            code = self._proc.returncode if self._proc else "never started"
            raise LocalLabelStudioError(f"Label Studio exited ({code}); see {self.log_path}\n{self.log_tail()}")
        if self.startup_seconds:
            return True
        try:
            healthy = requests.get(f"{self.url}/health", timeout=2).status_code == 200
        except requests.RequestException:  # not listening yet
            return False
        if healthy:
            self.startup_seconds = time.monotonic() - self._launched_at
        return healthy

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        processes.stop(proc)

    def __enter__(self) -> "LabelStudioServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, chars: int = 3000) -> str:
        return processes.log_tail(self.log_path, chars)

    def _pause(self, attempt: int) -> None:
        """The wait before try number `attempt` (0 is the first, which does not wait)."""
        if attempt:
            time.sleep(self.retry_delay * 2 ** (attempt - 1))

    def _call(self, session: requests.Session, method: str, path: str, what: str, **kwargs) -> requests.Response:
        """A request that is safe to repeat, tried again on a timeout, a dropped connection, a 5xx or a 429; any
        other answer is returned. LocalLabelStudioError, one line, if every try failed."""
        problem = ""
        for attempt in range(self.tries):
            self._pause(attempt)
            try:
                answer = session.request(method, f"{self.url}{path}", timeout=self.timeout, **kwargs)
            except requests.RequestException as e:
                problem = _failure(e, self.timeout)
                continue
            if not transient(answer.status_code):
                return answer
            problem = f"HTTP {answer.status_code}"
        raise self._no_answer(what, method, path, problem)

    def _no_answer(self, what: str, method: str, path: str, problem: str) -> LocalLabelStudioError:
        log = f"; see {self.log_path}" if self.log_path.exists() else ""
        return LocalLabelStudioError(
            f"Label Studio at {self.url} did not answer {what} ({method} {path}) in {self.tries} tries, "
            f"the last: {problem}; is it overloaded or restarting?{log}"
        )

    def login(self, email: str, password: str) -> requests.Session:
        """A browser-like session: the login form's CSRF cookie, then email and password posted to it."""
        session = requests.Session()
        self._call(session, "GET", "/user/login/", "the login form").raise_for_status()
        # Posting the form again after a lost answer only logs in again: safe to repeat.
        answer = self._call(
            session,
            "POST",
            "/user/login/",
            f"the login of {email}",
            data={"email": email, "password": password, "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")},
            headers={"Referer": f"{self.url}/user/login/"},
            allow_redirects=False,
        )
        # Success redirects; a wrong password re-renders the form with 200.
        if answer.status_code != 302:
            raise LoginError(f"login as {email} to {self.url} failed (HTTP {answer.status_code})")
        # Session-authenticated API writes need the CSRF token echoed in a header.
        session.headers.update({"X-CSRFToken": session.cookies.get("csrftoken", ""), "Referer": f"{self.url}/"})
        return session

    def _whoami(self, session: requests.Session) -> int:
        answer = self._call(session, "GET", "/api/current-user/whoami", "who the admin is")
        answer.raise_for_status()
        return int(answer.json()["id"])

    def _token_valid(self, token: str) -> bool:
        """Whether Label Studio still honours a saved token. Only a 401 says no: Label Studio 1.23 (simplejwt)
        answers 401 `token_not_valid` for a revoked (blacklisted), expired or foreign token. A timeout or a 5xx
        says nothing about the token, and taking it for a no would ask for a second token, which answers 409."""
        with requests.Session() as session:
            answer = self._call(session, "POST", f"{TOKEN_PATH}refresh/", "the token check", json={"refresh": token})
        if answer.status_code == 200:
            return True
        if answer.status_code == 401:
            return False
        raise LocalLabelStudioError(
            f"checking the saved token at {self.url} failed (HTTP {answer.status_code}): {_one_line(answer.text)}"
        )

    def _live_tokens(self, session: requests.Session) -> list[str]:
        """The user's unrevoked tokens as Label Studio lists them: shortened (no signature), enough to revoke."""
        answer = self._call(session, "GET", TOKEN_PATH, "the token list")
        answer.raise_for_status()
        return [item["token"] for item in answer.json()]

    def _revoke(self, session: requests.Session, short_token: str) -> None:
        """Revoke a token as the UI's Revoke button does; 404 means it was revoked already."""
        answer = self._call(
            session, "POST", f"{TOKEN_PATH}blacklist/", "the token revocation", json={"refresh": short_token}
        )
        if answer.status_code not in (204, 404):
            raise LocalLabelStudioError(f"revoking a token at {self.url} failed (HTTP {answer.status_code})")

    def _new_token(self, session: requests.Session, email: str) -> str:
        """A new token for the logged-in user.

        Creating one is not safe to repeat blindly: if Label Studio made the token but its answer was lost, the
        next POST answers 409 and the lost token can never be read again. The user had no token before the first
        try (checked), so a token listed after a failed try is that lost one: it is revoked before trying again.
        """
        if self._live_tokens(session):
            raise LocalLabelStudioError(
                f"{email} already has a Personal Access Token that is not saved in {self.tokens_path}; "
                "revoke it in Label Studio (Account & Settings) and start again"
            )
        problem = ""
        for attempt in range(self.tries):
            self._pause(attempt)
            if attempt:
                for lost in self._live_tokens(session):
                    self._revoke(session, lost)
            try:
                answer = session.post(f"{self.url}{TOKEN_PATH}", timeout=self.timeout)
            except requests.RequestException as e:
                problem = _failure(e, self.timeout)
                continue
            if answer.status_code == 201:
                return answer.json()["token"]
            # A 409 on the first try means someone made a token since the check above; later, the lost one made
            # it (a slow first try can land after the revocation): revoke it again next time round.
            if transient(answer.status_code) or (answer.status_code == 409 and attempt):
                problem = f"HTTP {answer.status_code}"
                continue
            raise LocalLabelStudioError(
                f"creating a token for {email} failed (HTTP {answer.status_code}): {_one_line(answer.text)}"
            )
        # Leave no lost token behind, or the next start would find a token it cannot use and stop with a 409.
        try:
            for lost in self._live_tokens(session):
                self._revoke(session, lost)
        except (LocalLabelStudioError, requests.RequestException):
            pass  # still not answering: the error below says so
        raise self._no_answer(f"the token request for {email}", "POST", TOKEN_PATH, problem)

    def create_token(self, email: str, password: str) -> str:
        """The user's Personal Access Token, made on first use and kept in the data directory.

        Label Studio allows one live token per user (a second POST answers 409) and never shows a token
        again, so a restart on the same data directory must reuse the saved one. A new one is made only when
        there is none saved or Label Studio says the saved one is revoked (401); a Label Studio that does not
        answer gives a LocalLabelStudioError instead.
        """
        saved = json.loads(self.tokens_path.read_text()) if self.tokens_path.exists() else {}
        if email in saved and self._token_valid(saved[email]):
            return saved[email]
        saved[email] = self._new_token(self.login(email, password), email)
        # The file holds credentials: readable by its owner only.
        fd = os.open(self.tokens_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(saved, f)
        return saved[email]

    def create_user(self, email: str, password: str, first_name: str = "") -> User:
        """Another user in the admin's organization who can log in and has a token of their own."""
        admin = self.login(self.admin_email, self.admin_password)
        answer = admin.post(
            f"{self.url}/api/users/",
            json={"email": email, "username": email.split("@")[0], "first_name": first_name},
            timeout=10,
        )
        if answer.status_code != 201:
            raise LocalLabelStudioError(
                f"creating user {email} failed (HTTP {answer.status_code}): {answer.text[:200]}"
            )
        # The users API ignores passwords; the management command sets one. Its --username is the email, and
        # it exits 0 even when nobody matches, hence the check of its output.
        done = subprocess.run(
            [str(self.ls_bin), "reset_password", "--username", email, "--password", password],
            cwd=self.data_dir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if "successfully" not in done.stdout + done.stderr:
            raise LocalLabelStudioError(f"reset_password for {email} failed: {(done.stdout + done.stderr)[-500:]}")
        return User(
            id=int(answer.json()["id"]), email=email, password=password, token=self.create_token(email, password)
        )


def _failure(error: requests.RequestException, timeout: float) -> str:
    """A request's failure in a few words (requests' own messages run to several lines of urllib3 detail)."""
    if isinstance(error, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(error, requests.ConnectionError):
        return "connection refused or dropped"
    return type(error).__name__


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


@contextlib.contextmanager
def temporary(database: str = "sqlite", progress: bool = True) -> Iterator[LabelStudioServer]:
    """A fresh Label Studio in a temporary directory, on SQLite or on a throwaway PostgreSQL cluster
    (backend/dev/postgres.py), for the benchmarks that start their own; stopped and removed at exit."""
    from backend.dev import postgres

    if not available():
        raise LocalLabelStudioError(f"Label Studio is not installed ({LS_BIN}): run `make labelstudio`")
    with tempfile.TemporaryDirectory(prefix="labelstudio-") as tmp, contextlib.ExitStack() as stack:
        if progress:
            print(f"starting Label Studio on {database} in a temporary directory...", file=sys.stderr, flush=True)
        env = None
        if database == "postgresql":
            env = stack.enter_context(postgres.PostgresCluster()).connection.label_studio_env()
        yield stack.enter_context(
            LabelStudioServer(
                Path(tmp) / "ls", port=processes.free_port(), admin_password="bench-pass-1234", database=env
            )
        )
