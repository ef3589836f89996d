"""The one-command demo: Label Studio and the backend on 127.0.0.1, a movie-review project with predictions.

Everything lives in one data directory (default `data/` in the repository): Label Studio's database and log in
`label-studio/`, the backend's event log and log in `backend/`, the admin's login in `admin-login.json`. A second
run on the same directory is a warm start: the project is found by title, tasks already imported (matched by a
hash of their data) are skipped, and Label Studio itself skips tasks that already have a prediction from the
backend's current model version, so only new tasks, or all of them after a model change, are predicted.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

import requests
from label_studio_sdk import LabelStudio

from backend import corpus
from backend.dev import labelstudio as ls_server
from backend.dev import processes
from backend.errors import LabelloopError
from backend.files import write_atomically
from backend.labelstudio import sync, task_files
from backend.labelstudio.client import connect
from backend.paths import DEMO_CONFIG, DEMO_GUIDELINES, ROOT

DATA_DIR = ROOT / "data"
TITLE = "Movie review sentiment"
N_TASKS = 300
SAMPLE_SEED = 2026  # a fixed sample: every run asks for the same reviews, so a rerun imports nothing
LS_PORT = 8080
BACKEND_PORT = 9090
WARM_UP_TASKS = 64  # at most, predicted and dropped while Label Studio's first start runs its migrations
ADMIN_EMAIL = "admin@example.com"
LOGIN_FILE = "admin-login.json"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class DemoError(LabelloopError, RuntimeError):
    """The demo cannot go on; the message is one line saying why and what to do."""

    http_status = 500


# ---------------------------------------------------------------- login and tasks


@dataclass(frozen=True)
class Login:
    email: str
    password: str
    source: str  # where the password comes from, for the user


def admin_login(data_dir: Path) -> Login:
    """LABEL_STUDIO_USERNAME / LABEL_STUDIO_PASSWORD if set, else the login saved in the data directory, else a
    new random password, saved there (owner-readable only) so later runs and the user can find it."""
    email = os.environ.get("LABEL_STUDIO_USERNAME", "").strip()
    password = os.environ.get("LABEL_STUDIO_PASSWORD", "")
    path = data_dir / LOGIN_FILE
    try:
        saved = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        raise DemoError(
            f"{_shown(path)} is not the JSON the demo wrote; delete it (or set LABEL_STUDIO_PASSWORD)"
        ) from None
    email = email or saved.get("email") or ADMIN_EMAIL
    if password:
        return Login(email, password, "from LABEL_STUDIO_PASSWORD")
    if saved.get("email") == email and saved.get("password"):
        return Login(email, saved["password"], f"saved in {_shown(path)}")
    password = secrets.token_urlsafe(12)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"email": email, "password": password}, f)
    return Login(email, password, f"generated, saved in {_shown(path)}")


def sample_tasks(n: int = N_TASKS, seed: int = SAMPLE_SEED) -> list[dict]:
    """About n Rotten Tomatoes reviews with the corpus's label proportions, as tasks; the same for the same n.

    The gold label stays out of the task: the Data Manager shows every data field to annotators.
    """
    (sample,) = corpus.stratified_split(corpus.load(), [n], seed=seed)
    tasks: dict[str, dict] = {}
    for row in sample.itertuples():
        data = {"text": row.text, "movie": str(row.movie)}
        digest = task_files.task_hash(data)
        tasks.setdefault(digest, {"data": {**data, task_files.HASH_KEY: digest}})
    return list(tasks.values())


# ---------------------------------------------------------------- the backend process


def write_secret(path: Path, value: str) -> None:
    """A file only its owner can read, written whole: the backend may read it at any moment."""
    write_atomically(path, lambda f: f.write(value), private=True)


class BackendProcess:
    """The backend as `make serve` runs it (gunicorn from this venv), on 127.0.0.1 only."""

    def __init__(self, port: int, data_dir: Path):
        self.port = port
        self.url = processes.url_of(port)
        self.data_dir = data_dir
        self.log_path = data_dir / "backend.log"
        self.token_path = data_dir / "label-studio-token"
        self.ls_url = ""
        self.ready_seconds = 0.0
        self._proc: subprocess.Popen | None = None
        self._launched_at = 0.0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def launch(self) -> None:
        if not processes.GUNICORN.exists():
            raise DemoError(f"{processes.GUNICORN} is missing: run `make install`")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The rest of the environment passes through, so LLM_MODEL, THREADS and the other settings still apply.
        env = {
            "DATA_DIR": str(self.data_dir),
            # Label Studio's token exists only once it has started, so the backend reads it from a file when it
            # first trains; the URL is set by Demo before launch.
            "LABEL_STUDIO_API_KEY_FILE": str(self.token_path),
            "LABEL_STUDIO_URL": self.ls_url,
        }
        self._launched_at = time.monotonic()
        # Appended to: a warm start keeps the earlier runs' lines. Its own group: stop() reaches the worker, and
        # Ctrl-C goes to the demo only, which then stops both servers in order.
        self._proc = processes.start_gunicorn(self.port, self.log_path, env, append=True, own_session=True)

    def poll_ready(self) -> bool:
        """One look at /health: True once the model is loaded; DemoError if the backend died or broke."""
        if not self.running():
            raise DemoError(f"the backend exited while starting; see {_shown(self.log_path)}")
        answer = processes.health(self.url)
        if answer is None:  # not listening yet
            return False
        if answer.status_code == 200:
            if not self.ready_seconds:
                self.ready_seconds = time.monotonic() - self._launched_at
            return True
        error = processes.load_error(answer)
        if error:
            raise DemoError(f"the backend failed to load its model: {error}; see {_shown(self.log_path)}")
        return False

    def warm_up(self, tasks: list[dict], label_config: str) -> None:
        """Predict a few tasks and drop the answers: the first forward passes of each new shape run several
        times slower than later ones, and Label Studio gives up on a /predict call after 100 s."""
        body = {"tasks": tasks, "label_config": label_config, "project": "demo-warm-up"}
        try:
            requests.post(f"{self.url}/predict", json=body, timeout=60)
        except requests.RequestException:  # only a warm-up: the real requests will say what is wrong
            pass

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        processes.stop(proc)


# ---------------------------------------------------------------- the demo


@dataclass(frozen=True)
class DemoState:
    url: str
    project_url: str
    login: Login
    project_id: int
    project_status: str  # created, updated or unchanged
    tasks: int
    imported: int
    predicted: int  # tasks with a prediction from model_version
    newly_predicted: int
    model_version: str
    project_model_version: str
    backend_url: str
    ls_first_start: bool
    ls_seconds: float
    backend_seconds: float
    import_seconds: float
    predict_seconds: float
    ls_log: Path
    backend_log: Path


class Demo:
    """`with Demo(...) as demo: state = demo.start()`: both servers up, the project ready; both stopped at exit."""

    def __init__(
        self,
        data_dir: str | os.PathLike = DATA_DIR,
        ls_port: int = LS_PORT,
        backend_port: int = BACKEND_PORT,
        n_tasks: int = N_TASKS,
        progress: bool = False,
        timeout: float = 300.0,
    ):
        self.data_dir = Path(data_dir).resolve()
        self.ls_port = ls_port
        self.backend_port = backend_port
        self.n_tasks = n_tasks
        self.progress = progress
        self.timeout = timeout
        self.ls: ls_server.LabelStudioServer | None = None
        self.backend = BackendProcess(backend_port, self.data_dir / "backend")

    def __enter__(self) -> "Demo":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> DemoState:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> DemoState:
        if not ls_server.available():
            raise DemoError(f"Label Studio is not installed ({ls_server.LS_BIN} is missing): run `make labelstudio`")
        if self.ls_port == self.backend_port:
            raise DemoError(f"Label Studio and the backend cannot share port {self.ls_port}")
        for port, flag in ((self.ls_port, "--ls-port"), (self.backend_port, "--backend-port")):
            if not processes.port_free(port):
                raise DemoError(
                    f"port {port} on 127.0.0.1 is in use: stop what listens there or choose another with {flag}"
                )
        login = admin_login(self.data_dir)
        tasks = sample_tasks(self.n_tasks)
        self.ls = ls_server.LabelStudioServer(
            self.data_dir / "label-studio", port=self.ls_port, admin_email=login.email, admin_password=login.password
        )

        # Both start in parallel: Label Studio's first start (migrations) takes longer than the model's load.
        self.backend.ls_url = self.ls.url
        with _signals_held():
            self.ls.launch()
            self.backend.launch()
        self._wait_both(tasks)
        try:
            self.ls.wait_ready()  # healthy already: logs the admin in and gets the token
        except ls_server.LoginError:
            raise DemoError(
                f"Label Studio's database in {_shown(self.ls.data_dir)} rejects the password for {login.email} "
                f"({login.source}): set LABEL_STUDIO_PASSWORD to the one it was made with, or delete "
                f"{_shown(self.data_dir)} to start afresh"
            ) from None
        client = connect(self.ls.url, self.ls.admin.token).client
        write_secret(self.backend.token_path, self.ls.admin.token)

        started = time.monotonic()
        project = sync.ensure_project(client, TITLE, DEMO_CONFIG, DEMO_GUIDELINES)
        imported = sync.import_tasks(client, project.id, tasks, progress=self.progress)
        import_seconds = time.monotonic() - started

        started = time.monotonic()
        self._drop_other_backends(client, project.id)
        config = client.projects.get(id=project.id).label_config or ""
        version = sync.backend_model_version(self.backend.url, project.id, config)
        _, before = sync.count_predicted(client, project.id, version)
        result = sync.connect_backend(client, project.id, self.backend.url, progress=self.progress)
        predict_seconds = time.monotonic() - started

        return DemoState(
            url=self.ls.url,
            project_url=f"{self.ls.url}/projects/{project.id}/data",
            login=login,
            project_id=project.id,
            project_status=project.status,
            tasks=result.tasks,
            imported=imported.imported,
            predicted=result.predicted,
            newly_predicted=result.predicted - before,
            model_version=result.model_version,
            project_model_version=result.project_model_version,
            backend_url=self.backend.url,
            ls_first_start=self.ls.first_start,
            ls_seconds=self.ls.startup_seconds,
            backend_seconds=self.backend.ready_seconds,
            import_seconds=import_seconds,
            predict_seconds=predict_seconds,
            ls_log=self.ls.log_path,
            backend_log=self.backend.log_path,
        )

    def _wait_both(self, tasks: list[dict]) -> None:
        """Poll both servers in one loop, so each one's start-up time is measured on its own. While Label Studio
        still migrates its new database (a first start), the ready backend warms up on the demo's tasks."""
        deadline = time.monotonic() + self.timeout
        ls_up = backend_up = False
        label_config = DEMO_CONFIG.read_text(encoding="utf-8")
        warm_up = [{"id": n, "data": t["data"]} for n, t in enumerate(tasks[:WARM_UP_TASKS])]
        while not (ls_up and backend_up):
            try:
                ls_up = ls_up or self.ls.poll_healthy()
            except ls_server.LocalLabelStudioError:
                raise DemoError(f"Label Studio exited while starting; see {_shown(self.ls.log_path)}") from None
            backend_up = backend_up or self.backend.poll_ready()
            if time.monotonic() > deadline:
                late = "Label Studio" if not ls_up else "the backend"
                log = self.ls.log_path if not ls_up else self.backend.log_path
                raise DemoError(f"{late} was not ready after {self.timeout:.0f} s; see {_shown(log)}")
            if backend_up and not ls_up and warm_up:
                # A few tasks per call, so Label Studio's readiness is still noticed within a second or two.
                self.backend.warm_up(warm_up[:4], label_config)
                warm_up = warm_up[4:]
            else:
                time.sleep(0.3)

    def _drop_other_backends(self, client: LabelStudio, project_id: int) -> None:
        # Label Studio asks only a project's first ML backend, so a connection left from a run on another port
        # would take every prediction request; the demo owns this project, so it removes such leftovers.
        for backend in client.ml.list(project=project_id):
            old_url = (backend.url or "").rstrip("/")
            if old_url == self.backend.url:
                continue
            client.ml.delete(id=backend.id)
            # Label Studio keeps the webhook it made for that backend; saves would keep calling a dead address.
            for hook in client.webhooks.list(project=str(project_id)):
                if (hook.url or "").rstrip("/") == f"{old_url}/webhook":
                    client.webhooks.delete(id=hook.id)
            print(f"removed the project's old ML backend connection {old_url}", file=sys.stderr)

    def check_alive(self) -> None:
        """DemoError if either server stopped on its own."""
        if self.ls is not None and not self.ls.running():
            raise DemoError(f"Label Studio stopped unexpectedly; see {_shown(self.ls.log_path)}")
        if not self.backend.running():
            raise DemoError(f"the backend stopped unexpectedly; see {_shown(self.backend.log_path)}")

    @property
    def pids(self) -> list[int]:
        return [p for p in (self.ls.pid if self.ls else None, self.backend.pid) if p]

    def stop(self) -> None:
        """Stop both servers (each with everything it spawned); safe to call more than once."""
        try:
            self.backend.stop()
        finally:
            if self.ls is not None:
                self.ls.stop()


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold stop signals while children are spawned, so none can stop us between a fork and the moment the new
    child is recorded (it could not be stopped then); a signal that came meanwhile is delivered afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if received:
            signal.raise_signal(received[0])


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is below it: shorter to read."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def summary(state: DemoState) -> str:
    """What the user needs: where, who, what next, and how long the start took."""
    ls_kind = "first start, database created" if state.ls_first_start else "warm start"
    imported = f"{state.imported} imported now" if state.imported else "none new"
    return "\n".join(
        [
            "",
            f"Label Studio is ready: {state.project_url}",
            f"  email     {state.login.email}",
            f"  password  {state.login.password}   ({state.login.source})",
            "",
            f'Next: open the project "{TITLE}" and press "Label All Tasks". Each task opens with the model\'s',
            "  choice pre-selected: keep it or click another, then Submit. Tasks come lowest-confidence first",
            "  (uncertainty sampling); the guidelines are under Instructions.",
            "",
            f"Backend   {state.backend_url}, model_version {state.model_version}",
            f"Project   {state.backend_url}/projects/{state.project_id}: how the model learns, at a glance",
            f"Logs      backend {_shown(state.backend_log)}, Label Studio {_shown(state.ls_log)}",
            f"Start-up  Label Studio {state.ls_seconds:.1f} s ({ls_kind}), backend ready {state.backend_seconds:.1f} s,",
            f"          project {state.project_status} with {state.tasks} tasks ({imported}) {state.import_seconds:.1f} s,",
            f"          predictions {state.predicted}/{state.tasks} ({state.newly_predicted} new) "
            f"{state.predict_seconds:.1f} s",
            "",
            "Press Ctrl-C to stop both.",
        ]
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(demo: Demo, out: TextIO = sys.stdout) -> int:
    """Start the demo, print the summary, and keep both servers up until SIGINT, SIGTERM or SIGHUP; 0 then.

    Errors propagate (both servers are stopped first) for the caller to report.
    """
    # SIGINT too: a shell that starts a job in the background makes it ignore SIGINT, and Ctrl-C must still work.
    previous = {s: signal.signal(s, _interrupt) for s in STOP_SIGNALS}
    try:
        state = demo.start()
        print(summary(state), file=out, flush=True)
        while True:
            demo.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        print("stopping Label Studio and the backend", file=sys.stderr, flush=True)
        return 0
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave a server behind.
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        try:
            demo.stop()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
