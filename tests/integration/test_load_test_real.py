"""`labelloop load-test` with the packaged model; the tests without the packaged model are in tests/unit/test_load_test.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import warm
from helpers import ROOT

SCRIPT = warm.labelloop("load-test")


@pytest.mark.real_model
def test_a_short_run_against_the_real_backend(tmp_path):
    out, plot = tmp_path / "load.json", tmp_path / "load.png"
    done = subprocess.run(
        [
            sys.executable,
            *SCRIPT,
            "--clients",
            "3",
            "--seconds",
            "8",
            "--max-batch",
            "8",
            "--json",
            str(out),
            "--plot",
            str(plot),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(out.read_text())
    assert summary["/predict"]["requests"] >= 3 and summary["/predict"]["errors"] == 0
    assert summary["tasks_predicted"] > 0 and summary["rss_mb"]["peak"] > 500
    assert plot.stat().st_size > 10_000
