"""Test helpers shared by tests/unit/test_demo.py and the tiers that build on it."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from pathlib import Path

import pytest
import requests
import warm
from label_studio_sdk import LabelStudio

from backend.dev import demo
from backend.labelstudio import task_files

DEMO_SCRIPT = warm.labelloop("demo")


N = 20


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
