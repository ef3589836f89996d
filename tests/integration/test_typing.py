"""mypy (over the packages pyproject.toml names) and ruff (lint and format) hold the code as it is: a change that
breaks either fails here."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(tool: str, *args: str) -> subprocess.CompletedProcess:
    if importlib.util.find_spec(tool) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is not installed (pip install -e '.[test]')")
        pytest.skip(f"{tool} is not installed (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-m", tool, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_mypy_finds_no_errors():
    done = _run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_finds_nothing_to_fix():
    done = _run("ruff", "check", "backend", "tests", "scripts")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_code_is_as_ruff_formats_it():
    done = _run("ruff", "format", "--check", "backend", "tests", "scripts")
    assert done.returncode == 0, done.stdout + done.stderr
