"""The re-score benchmark (backend/bench/rescore.py) on a tiny pool in a real Label Studio; the tests without Label Studio are in tests/unit/test_rescore_bench.py."""

from __future__ import annotations

import json
import math

import pytest
from labelstudio import needs_ls
from support.rescore import CHUNK, N_TASKS, RUNS, result  # noqa: F401 (result: a fixture)

from backend.bench import rescore as rescore_bench


@pytest.mark.e2e
@needs_ls
def test_every_task_ends_with_one_prediction_of_the_serving_version(result):
    last = result["run"][-1]["published"]
    assert result["check"] == {
        "model_versions": {last: N_TASKS},
        "project_model_version": last,
        "tasks": N_TASKS,
        "tasks_with_one_prediction": N_TASKS,
        "ok": True,
    }
    assert result["import"] == {"tasks": N_TASKS, "seconds": result["import"]["seconds"], "requests": 1}
    assert "check OK" in rescore_bench.report(result)
    json.dumps(result)  # what --out writes


@pytest.mark.e2e
@needs_ls
def test_request_counts_follow_the_chunking_and_each_run_deletes_the_set_before(result):
    pages = math.ceil(N_TASKS / result["page_size"])
    previous = None
    for row in result["run"]:
        requests = {phase: figures["requests"] for phase, figures in row["phases"].items()}
        assert requests["write"] == math.ceil(N_TASKS / CHUNK)
        assert pages <= requests["read pool"] <= pages + 1  # the SDK's pager stops at an empty page
        assert requests["read config"] == requests["list versions"] == requests["switch"] == 1
        assert requests["tabs"] == 2  # list the tabs, then create or rewrite the one queue tab
        # nothing reaches Label Studio outside a phase
        assert requests["score"] == requests["rank"] == requests["other"] == 0
        assert requests["delete"] == (0 if previous is None else 1)
        assert row["deleted"] == ([] if previous is None else [previous])
        assert row["published"] != previous and row["pool"] == N_TASKS
        assert row["total_requests"] == sum(requests.values()) + row["token_refreshes"]
        assert row["label_studio_requests"] == sum(requests[p] for p in rescore_bench.LS_PHASES)
        assert row["errors"] == [] and row["label_studio_errors"] == 0
        assert row["published_new_set"] and row["delete_attempts"] == row["deleted"]
        # A small set is deleted within the request: nothing left for Label Studio to finish after the run.
        assert row["settle"] == {
            "seconds": row["settle"]["seconds"],
            "requests": 0,
            "polls": 0,
            "failed_polls": 0,
            "left": [],
        }
        previous = row["published"]
    assert [row["strategy"] for row in result["run"]] == list(rescore_bench.DEFAULT_STRATEGIES)


@pytest.mark.e2e
@needs_ls
def test_seconds_are_positive_and_add_up(result):
    for row in result["run"]:
        seconds = {phase: figures["seconds"] for phase, figures in row["phases"].items()}
        assert set(seconds) == set(rescore_bench.PHASES)
        assert all(value >= 0 for value in seconds.values())
        assert all(seconds[p] > 0 for p in rescore_bench.LS_PHASES if row["phases"][p]["requests"])
        assert row["total_seconds"] > 0
        assert sum(seconds.values()) == pytest.approx(row["total_seconds"], abs=0.01)
        assert row["label_studio_seconds"] == pytest.approx(sum(seconds[p] for p in rescore_bench.LS_PHASES), abs=0.01)
    first, later = result["run"][0], result["run"][1:]
    # The first run scores every text; the later ones read the per-text cache.
    assert first["phases"]["score"]["seconds"] > max(r["phases"]["score"]["seconds"] for r in later)
    steady = result["steady_state"]
    assert steady["runs"] == RUNS - 1
    for phase in rescore_bench.PHASES:
        mean = sum(r["phases"][phase]["seconds"] for r in later) / len(later)
        assert steady["phases"][phase]["seconds"] == pytest.approx(mean, abs=0.002)
    real = result["real_model_scoring"]
    assert real["reviews_per_s"] > 0
    assert real["first_run_seconds"] == pytest.approx(N_TASKS / real["reviews_per_s"], abs=0.1)


@pytest.mark.e2e
@needs_ls
def test_databases_side_by_side(result):
    table = rescore_bench.side_by_side({"sqlite": result, "postgresql": result}).splitlines()
    assert table[0].startswith("steady state") and len(table) == 4
    sqlite_row = table[2].split()
    assert sqlite_row[0] == "sqlite" and sqlite_row[-1] == "OK"
    assert float(sqlite_row[1]) == pytest.approx(result["steady_state"]["total_seconds"], abs=0.06)
