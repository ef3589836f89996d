"""backend/dev/processes.py: ports, the backend under gunicorn, waiting for /health, stopping, /proc readings.
Real sockets, real child processes, real gunicorn."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.dev import processes


def child(code: str, log_path: Path) -> subprocess.Popen:
    """This interpreter running `code`, its output in log_path."""
    with log_path.open("w") as log:
        return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)


def parent_of_one(own_session: bool = False) -> tuple[subprocess.Popen, int]:
    """A process that starts one child and waits, as a gunicorn master with its worker; and the child's pid."""
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, start_new_session=own_session
    )
    with parent.stdout:
        return parent, int(parent.stdout.readline())


PARENT = """
import subprocess, sys, time
kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(kid.pid, flush=True)
time.sleep(60)
"""


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether pid has left the process table (or is a zombie nobody has reaped yet) within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def exited_pid() -> int:
    """The pid of a process that has exited and been reaped: nothing in /proc has it (until the kernel reuses it)."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def test_free_port_is_bindable_and_port_free_sees_a_listener():
    port = processes.free_port()
    assert processes.port_free(port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        assert not processes.port_free(port)
    assert processes.port_free(port)


def test_memory_of_this_process_is_positive_and_the_peak_is_not_below_now():
    pid = os.getpid()
    now, peak = processes.memory_mb(pid), processes.memory_mb(pid, peak=True)
    assert 1 < now <= peak
    assert processes.memory_mb(pid, pid, peak=True) == pytest.approx(2 * peak, rel=0.05)  # summed over the pids
    assert processes.memory_mb() == 0  # no process, no memory
    with pytest.raises(FileNotFoundError):
        processes.memory_mb(exited_pid())  # a process that is gone is an error, not 0 MB


def test_worker_pids_are_the_children_or_the_process_itself():
    parent, kid = parent_of_one()
    try:
        assert processes.worker_pids(parent.pid) == [kid]
        assert processes.worker_pids(kid) == [kid]  # no children (a master before its fork)
    finally:
        processes.stop(parent)
        kill(kid)  # not in a group of its own: stopping the parent leaves the child running


def test_waiting_on_a_process_that_exits_at_once_names_its_log(tmp_path):
    log = tmp_path / "backend.log"
    proc = child("print('configuration error: THREADS is not a number'); raise SystemExit(3)", log)
    with pytest.raises(RuntimeError) as error:
        processes.wait_healthy(proc, processes.url_of(processes.free_port()), log, timeout=30)
    message = str(error.value)
    assert "exited (3)" in message and str(log) in message
    assert "THREADS is not a number" in message  # the log's end says why


def test_waiting_past_the_deadline_names_the_log_and_leaves_the_process_to_the_caller(tmp_path):
    log = tmp_path / "silent.log"
    proc = child("import time; time.sleep(60)", log)
    try:
        started = time.monotonic()
        with pytest.raises(RuntimeError, match=re.escape(f"not healthy after 1 s; see {log}")):
            processes.wait_healthy(proc, processes.url_of(processes.free_port()), log, timeout=1.0, every=0.1)
        assert time.monotonic() - started < 10
        assert proc.poll() is None
    finally:
        processes.stop(proc)
    assert proc.returncode is not None


def test_health_is_none_while_nothing_listens():
    assert processes.health(processes.url_of(processes.free_port())) is None


def test_stop_ends_a_whole_process_group():
    leader, kid = parent_of_one(own_session=True)
    try:
        processes.stop(leader, timeout=10)
        assert leader.returncode is not None
        assert gone(kid), "the leader's child outlived stop()"
    finally:
        if not gone(kid, timeout=0):
            kill(kid)
    processes.stop(leader)  # stopping a stopped process is nothing
    processes.stop(None)


def test_gunicorn_with_bad_settings_stops_and_its_log_says_why(tmp_path):
    """The real command, appending to an earlier log, in a group of its own, as the demo starts it."""
    log = tmp_path / "backend.log"
    log.write_text("an earlier run\n")
    port = processes.free_port()
    proc = processes.start_gunicorn(port, log, {"BATCH_SIZE": "many"}, append=True, own_session=True)
    try:
        assert os.getpgid(proc.pid) == proc.pid
        with pytest.raises(RuntimeError) as error:
            processes.wait_healthy(proc, processes.url_of(port), log, timeout=120)
        assert str(log) in str(error.value) and "BATCH_SIZE" in str(error.value)
    finally:
        processes.stop(proc)
    assert log.read_text().startswith("an earlier run\n")


def test_a_model_that_fails_to_load_ends_the_wait_without_the_timeout(tmp_path):
    """/health answering ERROR means the backend will never be ready: the wait stops there, not at its deadline."""
    empty = tmp_path / "no-model"
    empty.mkdir()
    log = tmp_path / "backend.log"
    started = time.monotonic()
    with pytest.raises(RuntimeError) as error:
        with processes.serving({"LLM_MODEL": str(empty), "DATA_DIR": str(tmp_path / "data")}, log, timeout=600):
            pass
    message = str(error.value)
    assert "will not be healthy" in message and "no config.json" in message and f"see {log}" in message
    assert time.monotonic() - started < 300
