"""Child processes the demo, the benchmarks and the tests start: the backend under gunicorn exactly as `make serve`
runs it, on 127.0.0.1 and a free port, waited for on /health and stopped cleanly, and what /proc says of its memory.

One home for these so that the command, the environment and the meaning of "ready" cannot drift apart between the
demo (backend/dev/demo.py), the benchmarks (backend/bench/engines.py, load.py, the commands) and the tests. Label
Studio and llama.cpp's server start with commands of their own (backend/dev/labelstudio.py, llama.py) but stop
through stop() here. Memory is read from /proc, so those two readers are Linux-only, as the benchmarks are.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import requests

from backend.paths import ROOT

HOST = "127.0.0.1"  # never 0.0.0.0: what these helpers start is for this machine only
# The gunicorn beside this interpreter, not the first on PATH: another environment's would import other packages.
GUNICORN = Path(sys.executable).parent / "gunicorn"
GUNICORN_ARGS = ("-c", "python:backend.serving.gunicorn_conf", "backend.serving.wsgi:app")  # `make serve`'s
LOG_TAIL_CHARS = 3000


# ---------------------------------------------------------------- ports


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on now, as the kernel picks one (another process may still take it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port now (SO_REUSEADDR, as servers bind, so TIME_WAIT is no bar)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------- the backend under gunicorn


def gunicorn_command() -> list[str]:
    """The command `make serve` runs, with this environment's gunicorn."""
    return [str(GUNICORN), *GUNICORN_ARGS]


def start_gunicorn(
    port: int,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    *,
    append: bool = False,
    own_session: bool = False,
) -> subprocess.Popen:
    """Start the backend as `make serve` does, on 127.0.0.1:port, and return at once (wait_healthy waits).

    `env` holds settings on top of this process's environment; HOST and PORT are set last, so the server is
    always where the caller will look for it. Its output goes to `log_path`, appended to with `append` (a
    restart on the same data directory keeps the earlier runs' lines). With `own_session` it gets a process group
    of its own: stop() then reaches its worker too, a SIGKILL to the group leaves no worker serving, and a Ctrl-C
    in the terminal goes to the caller only.
    """
    full_env = {**os.environ, **(env or {}), "HOST": HOST, "PORT": str(port)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a" if append else "w") as log:  # the child holds its own descriptor once started
        return subprocess.Popen(
            gunicorn_command(),
            cwd=ROOT,  # gunicorn_conf and the wsgi module are imported from the repository
            env=full_env,
            stdin=subprocess.DEVNULL,  # a server never reads it; nothing can stop at a prompt
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=own_session,
        )


def url_of(port: int) -> str:
    return f"http://{HOST}:{port}"


def health(url: str, timeout: float = 2.0) -> requests.Response | None:
    """One GET of {url}/health; None while nothing answers there (not listening yet, or still importing)."""
    try:
        return requests.get(f"{url}/health", timeout=timeout)
    except requests.RequestException:
        return None


def load_error(answer: requests.Response) -> str | None:
    """What /health reports once the model failed to load (status ERROR: the backend will never be ready), else None.
    Loading (503, status LOADING) is not an error: it only needs more time."""
    try:
        body = answer.json()
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("status") == "ERROR":
        return str(body.get("error") or "the model failed to load")
    return None


def log_tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    """The end of a log, where the reason a server stopped is; "(no log)" if it cannot be read."""
    try:
        return Path(path).read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def wait_healthy(proc: subprocess.Popen, url: str, log_path: Path, timeout: float = 120.0, every: float = 0.3) -> float:
    """Wait until the backend at `url` answers /health with 200; the seconds it took.

    RuntimeError naming `log_path`, with the log's end, when the process exits, /health reports that the model
    failed to load, or `timeout` seconds pass; the process is left to the caller to stop.
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        # Checked before asking: a dead server's port may already belong to someone else.
        code = proc.poll()
        if code is not None:
            raise RuntimeError(
                f"the backend exited ({code}) before it was healthy; see {log_path}\n{log_tail(log_path)}"
            )
        answer = health(url)
        if answer is not None:
            if answer.status_code == 200:
                return time.monotonic() - started
            error = load_error(answer)
            if error:
                raise RuntimeError(f"the backend will not be healthy: {error}; see {log_path}\n{log_tail(log_path)}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the backend was not healthy after {timeout:.0f} s; see {log_path}\n{log_tail(log_path)}"
            )
        time.sleep(every)


def stop(proc: subprocess.Popen | None, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it lingers past `timeout`; to the whole group when the process leads one (started
    with own_session), since signalling the leader alone would leave anything it spawned running."""
    if proc is None or proc.poll() is not None:
        return
    try:
        group = os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:  # gone between the two looks
        return

    def send(signum: int) -> None:
        if group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)

    try:
        send(signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@contextmanager
def serving(
    env: Mapping[str, str] | None, log_path: Path, port: int | None = None, timeout: float = 120.0
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`with serving(env, log) as (url, proc):` the backend started (on a free port unless given), healthy, and
    stopped at exit, also when it never became healthy (the RuntimeError of wait_healthy)."""
    port = port or free_port()
    proc = start_gunicorn(port, log_path, env)
    try:
        wait_healthy(proc, url_of(port), log_path, timeout)
        yield url_of(port), proc
    finally:
        stop(proc)


# ---------------------------------------------------------------- /proc


def memory_mb(*pids: int, peak: bool = False) -> float:
    """The processes' resident memory as the kernel counts it in /proc/<pid>/status, summed, in MB: now (VmRSS),
    or with `peak` the most since each process started (VmHWM), which a sampler polling VmRSS would miss between
    two looks. A process without the line (a zombie) counts 0."""
    field = "VmHWM:" if peak else "VmRSS:"
    kb = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                kb += int(line.split()[1])  # "VmRSS:    123456 kB"
                break
    return kb / 1024


def worker_pids(master_pid: int) -> list[int]:
    """gunicorn's workers, the master's child processes, where the model and its memory are; [master_pid] when it
    has none (not forked yet, or gone), so a memory reading still has a process to read."""
    # The children of the master's main thread, which is the one that forks workers.
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    try:
        pids = children.read_text().split()
    except FileNotFoundError:
        pids = []
    return [int(p) for p in pids] or [master_pid]
