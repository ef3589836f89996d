"""The command-line entry points: `labelloop` is the one console command and runs every command; scripts/ holds the
two scripts the project ships (agreement, sync_project), each a call of its `labelloop` command."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
SHIPPED = {"agreement": "--min-kappa", "sync_project": "connect"}


def test_labelloop_is_the_one_console_command():
    assert SCRIPTS == {"labelloop": "backend.cli.main:main"}


def test_the_shipped_scripts_are_their_commands():
    assert {p.stem for p in (ROOT / "scripts").glob("*.py")} == set(SHIPPED)
    labelloop = Path(sys.executable).parent / "labelloop"
    assert labelloop.exists(), "run `make install` (pip install -e .) to install the console command"
    for stem, option in SHIPPED.items():
        command = stem.replace("_", "-")
        by_name = subprocess.run([str(labelloop), command, "--help"], capture_output=True, text=True, timeout=120)
        by_script = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / f"{stem}.py"), "--help"],
            cwd="/",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert by_name.returncode == by_script.returncode == 0, by_name.stderr + by_script.stderr
        assert option in by_name.stdout and by_name.stdout == by_script.stdout, command
        assert by_name.stdout.startswith(f"usage: labelloop {command}"), by_name.stdout[:80]


def test_no_command_reaches_for_the_checkouts_path():
    # The package is installed; a script only calls its command.
    for path in [*(ROOT / "scripts").glob("*.py"), *(ROOT / "backend" / "cli").glob("*.py")]:
        assert "sys.path.insert" not in path.read_text(), path
