"""The one-command demo (backend/dev/demo.py) run for real; the tests without Label Studio are in tests/unit/test_demo.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests
from label_studio_sdk import LabelStudio
from labelstudio import ROOT, free_port, needs_ls
from support.demo import DEMO_SCRIPT, N, alive, check_project, demo_dir, descendants, read_until, wait_gone  # noqa: F401 (demo_dir: a fixture)

from backend.dev import demo, processes


@pytest.mark.e2e
@needs_ls
def test_demo_starts_then_restarts_on_the_same_data(demo_dir):
    expected = len(demo.sample_tasks(N))
    session = demo.Demo(demo_dir, ls_port=free_port(), backend_port=free_port(), n_tasks=N)
    with session:
        state = session.start()
        pids = set(session.pids) | {p for pid in session.pids for p in descendants(pid)}
        assert state.project_status == "created" and state.imported == expected
        assert state.tasks == state.predicted == state.newly_predicted == expected
        client = LabelStudio(base_url=state.url, api_key=session.ls.admin.token)
        check_project(client, state, expected)
        assert state.login.email == demo.ADMIN_EMAIL and "Ctrl-C" in demo.summary(state)
        page = f"{state.backend_url}/projects/{state.project_id}"  # the project page, named in the summary
        assert page in demo.summary(state) and requests.get(page, timeout=30).status_code == 200
        assert page in client.projects.get(id=state.project_id).description
    assert not wait_gone(pids), "processes left after stop()"

    # Warm start on other ports: same project, nothing imported or predicted twice.
    session = demo.Demo(demo_dir, ls_port=free_port(), backend_port=free_port(), n_tasks=N)
    with session:
        again = session.start()
        assert not again.ls_first_start and again.project_id == state.project_id
        assert again.project_status == "unchanged" and again.imported == 0
        assert again.predicted == expected and again.newly_predicted == 0
        assert again.login.password == state.login.password
        check_project(LabelStudio(base_url=again.url, api_key=session.ls.admin.token), again, expected)
    print(
        f"\ndemo timings: first start LS {state.ls_seconds:.1f} s, backend {state.backend_seconds:.1f} s, "
        f"predictions {state.predict_seconds:.1f} s; warm start LS {again.ls_seconds:.1f} s, "
        f"backend {again.backend_seconds:.1f} s, predictions {again.predict_seconds:.1f} s"
    )


@pytest.mark.e2e
@needs_ls
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_script_and_both_servers(demo_dir, signum):
    ls_port, backend_port = free_port(), free_port()
    args = ["--data-dir", str(demo_dir), "--ls-port", str(ls_port), "--backend-port", str(backend_port)]
    # stderr goes to a file: an unread pipe would block the script once it filled.
    err_path = demo_dir / f"stderr-{int(signum)}.txt"
    proc = subprocess.Popen(
        [sys.executable, *DEMO_SCRIPT, *args, "--tasks", str(N)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=err_path.open("w"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    children: set[int] = set()
    try:
        out = read_until(proc, "Press Ctrl-C", timeout=300)
        assert f"http://127.0.0.1:{ls_port}/projects/" in out and "password" in out
        children = descendants(proc.pid)
        assert len(children) >= 3, children  # Label Studio, gunicorn's master and its worker
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 0, err_path.read_text()
        assert not wait_gone(children), "servers left running after the script stopped"
        for port in (ls_port, backend_port):
            assert processes.port_free(port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
