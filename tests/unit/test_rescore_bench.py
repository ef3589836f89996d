"""The re-score benchmark (backend/bench/rescore.py, labelloop bench-rescore) on a tiny pool in a real Label Studio:
its figures add up, its request counts follow the chunking, and the pool ends with one prediction per task."""

from __future__ import annotations

import pytest
import warm

from backend.bench import rescore as rescore_bench

N_TASKS, RUNS, CHUNK = 60, 3, 16
SCRIPT = warm.labelloop("bench-rescore")


@pytest.fixture(scope="module")
def result(label_studio, tmp_path_factory):
    return rescore_bench.run(
        label_studio.url,
        label_studio.admin.token,
        tasks=N_TASKS,
        runs=RUNS,
        chunk=CHUNK,
        data_dir=tmp_path_factory.mktemp("bench-rescore"),
        progress=False,
    )


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
