"""The command-line entry points: `labelloop` runs every command; each old `labelloop-*` console script of
pyproject.toml is still a backend/cli module's main(), and each scripts/*.py runs the same command from a checkout."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
COMMANDS = {name: target for name, target in SCRIPTS.items() if name != "labelloop"}  # the old names


def test_labelloop_is_the_console_command_and_runs_every_old_one():
    from backend.cli.main import commands

    assert SCRIPTS["labelloop"] == "backend.cli.main:main"
    assert len(COMMANDS) == 20 and all(name.startswith("labelloop-") for name in COMMANDS)
    # The old names are the commands that existed before `labelloop`; a command added since has only the new one.
    assert {name.removeprefix("labelloop-") for name in COMMANDS} <= set(commands())
    for name, target in COMMANDS.items():
        assert target == f"backend.cli.{commands()[name.removeprefix('labelloop-')]}:main", name


def test_every_script_is_a_console_command_and_back():
    scripts = {p.stem for p in (ROOT / "scripts").glob("*.py")}
    assert {name.removeprefix("labelloop-").replace("-", "_") for name in COMMANDS} == scripts
    for name, target in COMMANDS.items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), name
        stem = name.removeprefix("labelloop-").replace("-", "_")
        assert f"from {module} import main" in (ROOT / "scripts" / f"{stem}.py").read_text()
    # No command reaches for the checkout's path: the package is installed, and scripts/ only forwards.
    for path in [*(ROOT / "scripts").glob("*.py"), *(ROOT / "backend" / "cli").glob("*.py")]:
        assert "sys.path.insert" not in path.read_text(), path


def test_an_installed_command_and_its_script_answer_alike():
    installed = Path(sys.executable).parent / "labelloop-agreement"
    assert installed.exists(), "run `make install` (pip install -e .) to install the console scripts"
    by_name = subprocess.run([str(installed), "--help"], capture_output=True, text=True, timeout=120)
    by_script = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "agreement.py"), "--help"],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert by_name.returncode == by_script.returncode == 0, by_name.stderr + by_script.stderr
    assert "--min-kappa" in by_name.stdout
    assert by_name.stdout.replace("labelloop-agreement", "agreement.py").split() == by_script.stdout.split()
