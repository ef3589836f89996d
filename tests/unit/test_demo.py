"""The one-command demo (backend/dev/demo.py, labelloop demo): fast checks of its pieces, then real runs."""

from __future__ import annotations

import json
import socket
import stat
import subprocess

import pytest
import warm
from labelstudio import ROOT, free_port, needs_ls
from support.demo import DEMO_SCRIPT, N, alive, check_project, demo_dir, descendants, read_until, wait_gone  # noqa: F401 (fixtures)

from backend.dev import demo
from backend.dev import labelstudio as ls_server
from backend.labelstudio import task_files


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
