"""The one-command demo (backend/dev/demo.py, labelloop demo): fast checks of its pieces, then real runs."""

from __future__ import annotations

import json
import os
import selectors
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import requests
import warm
from label_studio_sdk import LabelStudio
from labelstudio import ROOT, free_port, needs_ls

from backend.dev import demo
from backend.dev import labelstudio as ls_server
from backend.labelstudio import task_files

DEMO_SCRIPT = warm.labelloop("demo")
N = 20


def run_demo(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return warm.run([*DEMO_SCRIPT, *args], cwd=ROOT, timeout=timeout)


def assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode != 0, done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ---------------------------------------------------------------- without Label Studio


def test_sample_is_fixed_stratified_and_without_labels():
    tasks = demo.sample_tasks(N)
    assert tasks == demo.sample_tasks(N)
    assert abs(len(tasks) - N) <= 2
    hashes = [t["data"][task_files.HASH_KEY] for t in tasks]
    assert len(set(hashes)) == len(tasks)
    assert all(set(t["data"]) == {"text", "movie", task_files.HASH_KEY} for t in tasks)
    # A larger sample contains the smaller one, so raising --tasks on a rerun only adds reviews.
    assert set(hashes) <= {t["data"][task_files.HASH_KEY] for t in demo.sample_tasks(3 * N)}


def test_admin_login_is_generated_once_or_taken_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_USERNAME", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_PASSWORD", raising=False)
    first = demo.admin_login(tmp_path)
    assert first.email == demo.ADMIN_EMAIL and len(first.password) >= 12 and "generated" in first.source
    saved = tmp_path / demo.LOGIN_FILE
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    again = demo.admin_login(tmp_path)
    assert (again.email, again.password) == (first.email, first.password) and "saved" in again.source

    monkeypatch.setenv("LABEL_STUDIO_USERNAME", "me@example.org")
    monkeypatch.setenv("LABEL_STUDIO_PASSWORD", "my-own-pass-987")
    mine = demo.admin_login(tmp_path)
    assert (mine.email, mine.password) == ("me@example.org", "my-own-pass-987")
    assert json.loads(saved.read_text())["password"] == first.password  # a given password is not written down


def test_help():
    done = run_demo("--help")
    assert done.returncode == 0 and "--ls-port" in done.stdout and "--backend-port" in done.stdout


def test_label_studio_missing_says_make_labelstudio(tmp_path, monkeypatch):
    monkeypatch.setattr(ls_server, "LS_BIN", tmp_path / "no-label-studio")
    with pytest.raises(demo.DemoError, match="make labelstudio"):
        demo.Demo(tmp_path, ls_port=free_port(), backend_port=free_port()).start()


@needs_ls
@pytest.mark.parametrize("which", ["--ls-port", "--backend-port"])
def test_port_in_use_is_one_line_error(tmp_path, which):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        other = "--backend-port" if which == "--ls-port" else "--ls-port"
        done = run_demo("--data-dir", str(tmp_path), which, str(port), other, str(free_port()))
    assert_one_line_error(done, f"port {port}", "in use", which)
    assert not (tmp_path / "label-studio").exists()  # nothing was started


# ---------------------------------------------------------------- with Label Studio and the backend


def descendants(pid: int) -> set[int]:
    """Every process below pid, from /proc (children are in sessions of their own, so no group to look at)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        children = {p for p, parent in parents.items() if parent == current}
        found |= children
        todo.extend(children)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: set[int], timeout: float = 30) -> set[int]:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return {p for p in pids if alive(p)}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """One data directory for the module: the later tests start warm on what the first one made."""
    return tmp_path_factory.mktemp("demo")


def check_project(client: LabelStudio, state: demo.DemoState, expected_tasks: int) -> None:
    matches = [p for p in client.projects.list() if p.title == demo.TITLE]
    assert [p.id for p in matches] == [state.project_id]
    project = client.projects.get(id=state.project_id)
    assert project.sampling == "Uncertainty sampling" and project.show_instruction
    assert "Guidelines version" in project.expert_instruction
    tasks = list(client.tasks.list(project=state.project_id, fields="all"))
    assert len(tasks) == expected_tasks
    hashes = [t.data[task_files.HASH_KEY] for t in tasks]
    assert len(set(hashes)) == len(hashes)
    # The backend's version, asked directly, is the project's and every task's.
    answer = requests.post(
        f"{state.backend_url}/setup",
        json={"project": str(state.project_id), "schema": project.label_config},
        timeout=60,
    )
    assert project.model_version == answer.json()["model_version"] == state.model_version
    for task in tasks:
        assert any(p.model_version == state.model_version for p in task.predictions), f"task {task.id} not predicted"
    assert [b.url for b in client.ml.list(project=state.project_id)] == [state.backend_url]
    hooks = [h.url for h in client.webhooks.list(project=str(state.project_id))]
    assert hooks == [f"{state.backend_url}/webhook"], hooks


def read_until(proc: subprocess.Popen, marker: str, timeout: float) -> str:
    """The process's stdout up to the chunk holding marker; fails with what was read if it exits or stalls.

    Reads the raw descriptor: a buffered readline can pull the marker into Python's buffer, where select()
    never sees it, and the wait would then hang until the timeout.
    """
    fd = proc.stdout.fileno()
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    seen = ""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not selector.select(timeout=left):
            raise AssertionError(f"no {marker!r} in time; stdout so far:\n{seen}")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError(f"exited with {proc.wait()} before {marker!r}; stdout:\n{seen}")
        seen += chunk.decode("utf-8", "replace")
    return seen
