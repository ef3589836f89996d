"""Test helpers shared by tests/unit/test_rescore_bench.py and the tiers that build on it."""

from __future__ import annotations

import pytest

from backend.bench import rescore as rescore_bench

N_TASKS, RUNS, CHUNK = 60, 3, 16


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
