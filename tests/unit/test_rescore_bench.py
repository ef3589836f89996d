"""The re-score benchmark (backend/bench/rescore.py, labelloop bench-rescore) on a tiny pool in a real Label Studio:
its figures add up, its request counts follow the chunking, and the pool ends with one prediction per task."""

from __future__ import annotations

import pytest
import warm
from support.rescore import CHUNK, N_TASKS, RUNS, result  # noqa: F401 (fixtures)

SCRIPT = warm.labelloop("bench-rescore")


@pytest.mark.parametrize(
    "args",
    [
        ["--tasks", "0"],
        ["--runs", "x"],
        ["--ls-url", "http://localhost:8080"],
        ["--strategies", ","],
        ["--bogus"],
        ["--database", "mysql"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(args):
    answer = warm.run([*SCRIPT, *args], timeout=60)
    assert answer.returncode == 2
    assert answer.stdout == "" and len(answer.stderr.strip().splitlines()) == 1
    assert answer.stderr.startswith("error: ")
