"""Several backend replicas sharing one DATA_DIR (docs/scale.md): two Services in one process,
each with its own loop, caches and threads, as two gunicorn replicas would have."""

from __future__ import annotations

import json
import threading

from helpers import CONFIG
from support.loop import SCHEMA, FakeProject, make_service, predictor, webhook  # noqa: F401 (predictor is a fixture)

from backend.serving.app import create_app


def test_a_promotion_by_one_replica_is_served_by_the_other_without_a_restart(tmp_path, predictor, monkeypatch):
    project = FakeProject()
    project.install(monkeypatch)
    a, b = make_service(tmp_path, predictor, project), make_service(tmp_path, predictor, project)
    task = {"id": 130, "data": {"text": dict(project.tasks)[130]}}
    before = b.loop.predict("5", SCHEMA, [task])[2]
    record = a.loop.train("5")
    assert record["result"] == "promoted"
    after = b.loop.predict("5", SCHEMA, [task])[2]
    assert before != after == record["version"]


def test_concurrent_runs_on_two_replicas_take_turns_and_lose_no_version(tmp_path, predictor, monkeypatch):
    project = FakeProject()
    project.install(monkeypatch)
    replicas = [make_service(tmp_path, predictor, project) for _ in range(2)]
    clients = [create_app(r).test_client() for r in replicas]
    answers = []
    threads = [threading.Thread(target=lambda c=c: answers.append(webhook(c, "START_TRAINING").json)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in replicas:
        assert r.loop.training.wait("5", timeout=180)
    versions = clients[0].get("/versions?project=5").json["training"]
    names = [v["version"] for v in versions]
    # Without the lock both runs would number themselves r1 and one record would overwrite the other's artifact.
    assert len(names) == 2 and len(set(names)) == 2
    assert [n.rsplit("-", 1)[1] for n in names] == ["r1", "r2"]
    assert all(v["labels"] == 120 for v in versions)


def test_a_strategy_set_through_one_replica_is_used_by_the_other(tmp_path, predictor, monkeypatch):
    project = FakeProject()
    project.install(monkeypatch)
    a, b = make_service(tmp_path, predictor, project), make_service(tmp_path, predictor, project)
    assert b.loop.projects.strategy("5") == "margin"
    body = {"project": "5.1", "schema": CONFIG, "extra_params": {"strategy": "entropy"}}
    assert (
        create_app(a).test_client().post("/setup", data=json.dumps(body), content_type="application/json").status_code
        == 200
    )
    assert b.loop.projects.strategy("5") == "entropy"
