"""The one command, `labelloop <command>` (backend/cli/main.py), run as a user runs it: every command's help, one
`error:` line for what the user can fix, the old names' note, and a bug that keeps its traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import warm

from backend.cli.main import commands

ROOT = Path(__file__).resolve().parents[2]
EXPORT = ROOT / "tests" / "data" / "agreement" / "export.json"


def labelloop(*args: str) -> subprocess.CompletedProcess:
    return warm.run(["-m", "backend.cli", *args], cwd=ROOT, timeout=300)


def python(code: str, *args: str) -> subprocess.CompletedProcess:
    return warm.run(["-c", code, *args], cwd=ROOT, timeout=300)


def test_help_lists_every_command_with_its_summary():
    done = labelloop("--help")
    assert done.returncode == 0, done.stderr
    assert "usage: labelloop" in done.stdout
    for name in [*commands(), "serve"]:
        assert f"\n    {name}" in done.stdout, name
    assert "Inter-annotator agreement of a Label Studio export" in done.stdout  # agreement's docstring
    # The product's commands first, the benchmarks and simulations after them.
    product, benchmarks = done.stdout.split("benchmarks and simulations:")
    assert "\n    finish" in product and "\n    sync-project" in product and "bench-" not in product
    assert all(f"\n    {name}" in benchmarks for name in ("benchmark", "compare-strategies", "simulate-finish"))


@pytest.mark.parametrize("name", [*commands(), "serve"])
def test_every_command_has_its_own_help(name):
    done = labelloop(name, "--help")
    assert done.returncode == 0, done.stderr
    assert f"labelloop {name}" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [["no-such-command"], [], ["--no-such-option", "agreement"]])
def test_a_wrong_command_is_one_error_line_and_exit_2(args):
    done = labelloop(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr


def test_a_command_runs_with_its_arguments():
    done = labelloop("agreement", str(EXPORT), "--format", "json", "--bootstrap", "0")
    assert done.returncode == 0, done.stderr
    assert '"fleiss_kappa"' in done.stdout


def test_a_bad_argument_of_a_command_is_its_one_error_line():
    done = labelloop("agreement", str(EXPORT), "--no-such-option")
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr


# finish's run raises what the test gives it; --project and --out are what its parser needs before the run.
RAISING = """
import sys
from backend.cli import finish
from backend.cli.main import main
def run(args):
    raise {error}
finish.run = run
sys.exit(main(["finish", "--project", "1", "--out", "x.jsonl"]))
"""


def test_a_labelloop_error_in_a_command_is_one_line_and_exit_1():
    done = python(
        "from backend.errors import LabelloopError\n"
        + RAISING.format(error='LabelloopError("the project is gone: check --project")')
    )
    assert done.returncode == 1
    assert done.stderr == "error: the project is gone: check --project\n"


def test_an_error_of_label_studio_is_one_line_too():
    done = python(
        "from backend.labelstudio.tasks import LabelStudioUnavailable\n"
        + RAISING.format(error='LabelStudioUnavailable("Label Studio at http://x did not answer\\nlog tail")')
    )
    assert done.returncode == 1
    assert done.stderr == "error: Label Studio at http://x did not answer\n"


def test_ctrl_c_exits_130_without_a_traceback():
    done = python(RAISING.format(error="KeyboardInterrupt"))
    assert done.returncode == 130
    assert "Traceback" not in done.stderr and done.stderr.strip() == "interrupted"


def test_a_bug_keeps_its_traceback():
    done = python(RAISING.format(error='KeyError("bug")'))
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "KeyError: 'bug'" in done.stderr


def test_serve_runs_gunicorn_as_make_serve_does(monkeypatch):
    from backend.cli import main as cli_main

    called = []
    monkeypatch.setattr(cli_main.os, "execv", lambda path, argv: called.append(argv))
    cli_main.main(["serve", "--bind", "127.0.0.1:9999"])
    assert called == [
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:backend.serving.gunicorn_conf",
            "backend.serving.wsgi:app",
            "--bind",
            "127.0.0.1:9999",
        ]
    ]
    make = (ROOT / "Makefile").read_text()
    assert "gunicorn -c python:backend.serving.gunicorn_conf backend.serving.wsgi:app" in make


def test_every_command_goes_through_the_runner():
    for name, stem in commands().items():
        source = (ROOT / "backend" / "cli" / f"{stem}.py").read_text()
        assert "reporting_errors(" in source, name
