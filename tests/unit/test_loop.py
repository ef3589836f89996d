"""The loop on the tiny LLM and the real MiniLM, with Label Studio's answers held in memory.

The end-to-end test (test_e2e_loop.py) runs the same loop against a real Label Studio; here the point is what a
real server makes hard to arrange: a crash inside a run, a burst of concurrent webhooks, a restart mid-way.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from helpers import CONFIG
from support.lanes import lane_shown
from support.loop import SCHEMA, FakeProject, make_service, predictor, webhook  # noqa: F401 (fixtures)
from support.shapes import mismatches

from backend.labelstudio import tasks as ls_tasks
from backend.learning import classifier
from backend.loop import rescoring, training
from backend.metrics import RESCORE_PHASES
from backend.serving.app import create_app
from backend.serving.service import ProjectState, Service
from backend.settings import Settings


def test_a_burst_of_webhooks_is_answered_at_once_and_trains_at_most_twice(tmp_path, predictor, monkeypatch):
    project = FakeProject()
    project.install(monkeypatch)
    service = make_service(tmp_path, predictor, project)
    client = create_app(service).test_client()
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(webhook(client).json["training"])) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert service.loop.training.wait("5", timeout=120)
    assert answers.count("started") == 1 and answers.count("queued") <= 1
    assert len(answers) == 20
    assert project.fetches == 1 + answers.count("queued")
    versions = client.get("/versions?project=5").json
    assert mismatches(versions, ProjectState) == []
    assert versions["training"][0]["labels"] == 120
    # The blend of real embeddings beats the tiny random LLM on these labels, so it is promoted.
    assert versions["current"] == versions["training"][0]["version"]
    assert versions["current"].endswith("-r1")
    assert service.loop.rescoring.wait("5", timeout=120)
    assert project.model_version == versions["current"]
    assert {p["task"] for p in project.pushed} == {i for i, _ in project.tasks}
    assert all(p["model_version"] == versions["current"] for p in project.pushed)
    # Labeled tasks are ranked last; the rest get the strategy's priorities, lowest = ask first.
    scores = {p["task"]: p["score"] for p in project.pushed}
    assert max(scores[i] for i in range(121, 161)) < min(scores[i] for i in project.labels)
    # /predict now answers with the promoted version and the pool priority.
    task = {"id": 130, "data": {"text": dict(project.tasks)[130]}}
    answer = client.post(
        "/predict",
        data=json.dumps({"tasks": [task], "project": "5.1", "label_config": CONFIG}),
        content_type="application/json",
    ).json
    assert answer["model_version"] == versions["current"]
    assert answer["results"][0]["score"] == pytest.approx(scores[130], abs=1e-6)
    metrics = client.get("/metrics").data.decode()
    assert 'backend_training_runs_total{result="promoted"} 1.0' in metrics
    assert 'backend_rescore_progress{project="5"} 1.0' in metrics


def test_a_crash_inside_a_run_keeps_the_old_model_serving_and_a_restart_keeps_versions(
    tmp_path, predictor, monkeypatch
):
    project = FakeProject()
    project.install(monkeypatch)
    service = make_service(tmp_path, predictor, project)
    first = service.loop.train("5")
    assert first["result"] == "promoted"
    service.loop.rescoring.wait("5", timeout=120)

    def broken_fit(*args, **kwargs):
        raise MemoryError("simulated crash while fitting")

    # New labels make the next candidate worth promoting, then the fit dies.
    project.labels.update({i: label for i, label in zip(range(121, 141), ["Positive"] * 20)})
    monkeypatch.setattr(classifier, "fit", broken_fit)
    monkeypatch.setattr(training, "_incumbent_guess", lambda *a: np.zeros(140, dtype=int))
    assert service.loop.request_training("5") == "started"  # no task named: every label is read again
    assert service.loop.training.wait("5", timeout=120)
    assert 'backend_training_runs_total{result="failed"} 1.0' in service.metrics.render().decode()
    assert service.loop.projects.model("5").version == first["version"]

    restarted = make_service(tmp_path, predictor, project)
    assert restarted.loop.projects.model("5").version == first["version"]
    assert [v["version"] for v in restarted.loop.projects.versions("5")] == [first["version"]]
    results, _, version = restarted.loop.predict("5", SCHEMA, [{"id": 1, "data": {"text": "fine"}}])
    assert version == first["version"]


def test_a_candidate_that_does_not_beat_the_serving_model_is_kept_out(tmp_path, predictor, monkeypatch):
    project = FakeProject()
    project.install(monkeypatch)
    service = make_service(tmp_path, predictor, project)
    monkeypatch.setattr(
        training, "_incumbent_guess", lambda loop, incumbent, ids, y, *a: np.asarray(y).copy()
    )  # a perfect incumbent
    record = service.loop.train("5")
    assert record["result"] == "kept" and record["incumbent_macro_f1"] == 1.0
    assert service.loop.projects.model("5") is None
    assert [v["promoted"] for v in service.loop.projects.versions("5")] == [False]


def test_training_runs_on_the_gateway_and_says_when_a_rescore_is_due(tmp_path, predictor, monkeypatch):
    project = FakeProject()
    project.install(monkeypatch)
    service = make_service(tmp_path, predictor, project)
    gate = service.loop.gateway()
    record, due = training.run(gate, "5", time.perf_counter())
    assert record["result"] == "promoted" and due
    assert not service.loop.rescoring.busy("5")  # asking for the re-score is the caller's part
    monkeypatch.setattr(training, "_incumbent_guess", lambda gate, incumbent, ids, y, *a: np.asarray(y).copy())
    record, due = training.run(gate, "5", time.perf_counter())
    assert record["result"] == "kept" and due  # the serving model's pool was never ranked
    record, due = training.run(replace(gate, rescore_running=lambda project: True), "5", time.perf_counter())
    assert record["result"] == "kept" and not due  # the re-score under way ranks it


def test_training_without_label_studio_settings_is_a_clear_400(tmp_path, predictor):
    service = Service(Settings(data_dir=tmp_path), loader=lambda s: predictor)
    service.start()
    client = create_app(service).test_client()
    answer = webhook(client, "START_TRAINING")
    assert answer.status_code == 400 and "LABEL_STUDIO_URL" in answer.json["error"]
    saved = webhook(client)  # an annotation save must not fail because training is off
    assert saved.status_code == 200 and saved.json["training"].startswith("disabled: training needs LABEL_STUDIO_URL")
    assert webhook(client, "PROJECT_UPDATED").status_code == 200
    answer = client.post(
        "/webhook", data=json.dumps({"action": "START_TRAINING", "project": "x"}), content_type="application/json"
    )
    assert answer.status_code == 400 and "project" in answer.json["error"]


def test_the_strategy_is_set_per_project_through_setup(tmp_path, predictor):
    service = Service(Settings(data_dir=tmp_path), loader=lambda s: predictor)
    service.start()
    client = create_app(service).test_client()
    body = {"project": "9.1", "schema": CONFIG, "extra_params": {"strategy": "entropy"}}
    assert client.post("/setup", data=json.dumps(body), content_type="application/json").status_code == 200
    assert client.get("/versions?project=9").json["strategy"] == "entropy"
    assert client.get("/versions?project=8").json["strategy"] == "margin"
    bad = client.post(
        "/setup", data=json.dumps({**body, "extra_params": {"strategy": "vibes"}}), content_type="application/json"
    )
    assert bad.status_code == 400 and "unknown ranking strategy" in bad.json["error"]


def test_tasks_not_reached_in_time_are_answered_as_skipped(tmp_path, predictor):
    tasks = [{"id": i, "data": {"text": f"review number {i}"}} for i in range(7)]
    on_time = Service(Settings(data_dir=tmp_path, predict_chunk=2), loader=lambda s: predictor)
    on_time.start()
    results, skipped, _ = on_time.loop.predict("1", SCHEMA, tasks)
    assert not skipped and all(r["result"] for r in results)
    late = Service(Settings(data_dir=tmp_path, predict_chunk=2, predict_timeout=0), loader=lambda s: predictor)
    late.start()
    results, skipped, _ = late.loop.predict("1", SCHEMA, tasks + [{"id": 99, "data": {}}])
    assert [s["index"] for s in skipped] == list(range(8))
    assert "PREDICT_TIMEOUT" in skipped[0]["reason"] and "no 'text'" in skipped[7]["reason"]
    assert len(results) == 8 and not any(r["result"] for r in results)
    assert "backend_tasks_timed_out_total 7.0" in late.metrics.render().decode()


def test_annotation_events_reread_only_the_changed_tasks(tmp_path, predictor, monkeypatch):
    project = FakeProject()
    project.install(monkeypatch)
    service = make_service(tmp_path, predictor, project)
    client = create_app(service).test_client()

    def event(action, task=None):
        body = {"action": action, "project": {"id": 5}}
        if task is not None:
            body["task"] = {"id": task}
        client.post("/webhook", data=json.dumps(body), content_type="application/json")
        assert service.loop.training.wait("5", timeout=120)

    event("ANNOTATION_CREATED", 1)  # nothing read yet: everything is read
    project.labels[1] = "Neutral"
    project.labels[150] = "Negative"
    del project.labels[2]
    event("ANNOTATION_UPDATED", 1)
    event("ANNOTATION_CREATED", 150)
    assert project.reads[0] is None and project.reads[1:] == [[1], [150]]
    labels = {t.task_id: t.label for t in service.loop.projects.labels["5"].values()}
    assert labels[1] == "Neutral" and labels[150] == "Negative" and 2 in labels  # 2 changed without an event
    event("ANNOTATIONS_DELETED")
    assert project.reads[-1] is None and 2 not in service.loop.projects.labels["5"]
    assert service.loop.projects.versions("5")[-1]["labels"] == len(project.labels)
    service.loop.rescoring.wait("5", timeout=120)


def test_feature_caches_survive_a_restart(tmp_path, predictor, monkeypatch):
    project = FakeProject(n_tasks=60, n_labeled=40)
    project.install(monkeypatch)
    service = make_service(tmp_path, predictor, project)
    assert service.loop.train("5")["labels"] == 40
    service.loop.rescoring.wait("5", timeout=120)
    saved = sorted(p.name for p in (tmp_path / "cache").glob("*.npz"))
    features = service.loop.text.features()
    assert features == "llm-layer-1"  # the tiny model has two layers: 0.625 of them rounds to the first
    assert any(name.startswith("llm-") for name in saved) and any(name.startswith("states-") for name in saved)
    restarted = make_service(tmp_path, predictor, project)
    calls = []
    monkeypatch.setattr(predictor, "probabilities", lambda *a: calls.append(a) or None)
    monkeypatch.setattr(predictor, "probabilities_and_states", lambda *a: calls.append(a) or None)
    texts = [t for _, t in project.tasks]
    probs, _ = restarted.loop.text.llm_probs(SCHEMA, texts)
    states = restarted.loop.text.vectors(SCHEMA, texts, features)
    assert probs.shape == (60, 3) and states.shape == (60, 64) and not calls  # every text from the saved caches


def test_committee_priorities_before_the_pool_is_ranked_read_the_llm(tmp_path, predictor, monkeypatch):
    from backend.ranking import strategies

    project = FakeProject()
    project.install(monkeypatch)
    service = make_service(tmp_path, predictor, project, rank_strategy="committee")
    assert service.loop.train("5")["result"] == "promoted"
    service.loop.rescoring.wait("5", timeout=120)
    texts = ["a brand new review that nobody has ranked", "another one, just imported"]
    tasks = [{"id": 1000 + i, "data": {"text": t}} for i, t in enumerate(texts)]
    results, _, _ = service.loop.predict("5", SCHEMA, tasks)  # not in the pool's ranking: their own priority
    probs = service.loop.answers(SCHEMA, texts, service.loop.projects.model("5"))[SCHEMA.from_name]
    llm = service.loop.text.llm_probs(SCHEMA, texts)[0]
    want = 1 - (strategies.entropy(probs) + strategies.disagreement(probs, llm)) / 2
    assert [r["score"] for r in results] == pytest.approx(list(want), abs=1e-4)
    assert not np.allclose(want, strategies.pointwise_priority("margin", probs), atol=1e-3)


def test_each_publication_replaces_the_last_and_never_touches_foreign_predictions(tmp_path, predictor, monkeypatch):
    project = FakeProject()
    project.install(monkeypatch)
    project.versions["imported-v0"] = 160  # someone else's predictions in the same project
    service = make_service(tmp_path, predictor, project)
    loop = service.loop
    record = loop.train("5")
    assert record["result"] == "promoted"
    # The labels chose the recipe: the best cross-validated score among the candidates, and the gate's figure.
    assert record["recipe_scores"][record["recipe"]] == max(record["recipe_scores"].values()) == record["cv_macro_f1"]
    loop.rescoring.wait("5", timeout=120)
    first = project.model_version
    assert first == loop.projects.model("5").version
    # The same model ranked again (a strategy change) gets a name of its own, since Label Studio would keep both
    # sets under one; the first set goes once the project points at the second.
    loop.set_strategy("5", "entropy")
    loop.rescoring.wait("5", timeout=120)
    assert project.model_version == f"{first}+2" and project.deleted == [first]
    loop.rescore("5")
    assert project.model_version == first and project.deleted == [first, f"{first}+2"]
    assert project.versions == {"imported-v0": 160, first: 160}
    # /versions says how much of the pool the serving model may label, by the threshold measured when it trained.
    coverage = create_app(service).test_client().get("/versions?project=5").json["coverage"]
    assert coverage["measured"] and coverage["unlabeled"] == 40 and 0 <= coverage["model_can_label"] <= 40
    assert loop.projects.versions("5")[0]["routing"]["model"]["target"] == 0.95
    # /predict answers with the published name, so predictions Label Studio stores count in the queue.
    task = {"id": 3, "data": {"text": dict(project.tasks)[3]}}
    answer = loop.predict("5", SCHEMA, [task])
    assert answer[2] == first and answer[0][0]["model_version"] == first


def test_keep_prediction_versions_keeps_the_newest_sets(tmp_path, predictor, monkeypatch):
    project = FakeProject()
    project.install(monkeypatch)
    service = make_service(tmp_path, predictor, project, keep_prediction_versions=3)
    loop = service.loop
    loop.train("5")
    loop.rescoring.wait("5", timeout=120)
    version = project.model_version
    for _ in range(4):
        loop.rescore("5")
    # Names come back once free: the fifth set is called as the first was, and counts as the newest.
    assert project.model_version == version
    assert sorted(project.versions) == sorted([f"{version}+3", f"{version}+4", version])
    assert project.deleted == [version, f"{version}+2"]


def test_a_rescore_times_each_phase_once_and_says_which_runs(tmp_path, predictor, monkeypatch):
    project = FakeProject()
    project.install(monkeypatch)
    loop = make_service(tmp_path, predictor, project).loop
    loop.train("5")
    assert loop.rescoring.wait("5", timeout=120)
    seen = []  # the phase running when each Label Studio call is made

    def noting(call):
        def noted(*args, **kwargs):
            seen.append(rescoring.current_phase())
            return call(*args, **kwargs)

        return noted

    for name in ("model_versions", "push_predictions", "set_model_version", "delete_model_version"):
        monkeypatch.setattr(ls_tasks, name, noting(getattr(ls_tasks, name)))
    sample = loop.metrics.registry.get_sample_value
    before = {p: sample("backend_rescore_phase_seconds_count", {"phase": p}) for p in RESCORE_PHASES}
    loop.rescore("5")
    after = {p: sample("backend_rescore_phase_seconds_count", {"phase": p}) for p in RESCORE_PHASES}
    assert {p: after[p] - before[p] for p in RESCORE_PHASES} == dict.fromkeys(RESCORE_PHASES, 1.0)
    assert sample("backend_rescore_phase_seconds_sum", {"phase": "score"}) > 0
    assert seen == ["list versions", "write", "switch", "delete"] and project.deleted
    assert rescoring.current_phase() is None


def test_lanes_deal_the_pool_round_robin_into_score_ranges(tmp_path, predictor, monkeypatch):
    project = FakeProject()
    project.install(monkeypatch)
    service = make_service(tmp_path, predictor, project)
    client = create_app(service).test_client()
    answer = client.post(
        "/setup",
        data=json.dumps({"project": "5.1", "schema": CONFIG, "extra_params": {"lanes": 3}}),
        content_type="application/json",
    )
    assert answer.status_code == 200
    assert service.loop.rescoring.wait("5", timeout=120) and project.lanes == 3
    assert client.get("/versions?project=5").json["lanes"] == 3
    scores = np.array([p["score"] for p in project.pushed])
    assert 0 <= scores.min() and scores.max() <= 1  # Label Studio drops predictions scored outside [0, 1]
    lane = np.array([lane_shown(s, 3) for s in scores])  # each task in exactly one tab
    assert set(lane) == {0, 1, 2}
    counts = np.bincount(lane)  # dealt round robin (tests/unit/test_ls_queue.py checks the order)
    assert counts.max() - counts.min() <= 1
    # A task predicted before a ranking knows of it gets its lane from its id.
    task = {"id": 1000, "data": {"text": "A late addition to the pool."}}
    service.loop.projects.rankings.clear()
    result = service.loop.predict("5", SCHEMA, [task])[0][0]
    assert 1 / 3 <= result["score"] < 2 / 3  # 1000 % 3 == 1
    bad = client.post(
        "/setup",
        data=json.dumps({"project": "5", "schema": CONFIG, "extra_params": {"lanes": 0}}),
        content_type="application/json",
    )
    assert bad.status_code == 400 and "lanes must be a whole number" in bad.json["error"]


def test_consensus_crowdlab_trains_on_crowdlabs_labels(tmp_path, predictor, monkeypatch):
    project = FakeProject()
    for i in list(project.labels)[:40]:  # two annotators: user:1 gives the corpus label, user:2 another
        right = project.labels[i]
        wrong = next(label for label in SCHEMA.labels if label != right)
        project.votes[i] = (("user:1", right), ("user:2", wrong))
    project.install(monkeypatch)
    plain = make_service(tmp_path / "plain", predictor, project).loop.train("5")
    assert "consensus" not in plain
    record = make_service(tmp_path / "crowd", predictor, project, consensus="crowdlab").loop.train("5")
    assert record["consensus"]["method"] == "crowdlab" and record["consensus"]["tasks"] == 40
    assert set(record["consensus"]["annotator_quality"]) >= {"user:1", "user:2"}
    assert record["result"] in ("promoted", "kept")


def test_training_leaves_out_the_projects_own_gold(tmp_path, predictor, monkeypatch):
    """The gold set comes from GOLD_FILE (any labels: only its texts matter), not from the demo's file."""
    project = FakeProject()
    project.install(monkeypatch)
    own = tmp_path / "gold.jsonl"
    own.write_text('{"text": "a checked text", "label": "Spam"}\n')
    make_service(tmp_path / "own", predictor, project, gold_file=own).loop.train("5")
    assert [g.is_gold("A checked  TEXT") for g in project.gold_sets] == [True] * len(project.gold_sets) != []
    make_service(tmp_path / "none", predictor, project, gold_file=None).loop.train("5")
    assert len(project.gold_sets[-1]) == 0


def test_a_run_records_each_annotators_gold_the_doubted_labels_and_the_review_tab(tmp_path, predictor, monkeypatch):
    project = FakeProject()
    for i, label in list(project.labels.items())[:12]:  # planted mistakes: the model should doubt some of them
        project.labels[i] = {"Positive": "Negative", "Negative": "Positive"}.get(label, label)
    g = ls_tasks.GoldVote
    project.gold = [g(900 + i, "user:1", "Positive", "Positive", f"2026-01-01T00:00:{i:02d}") for i in range(10)] + [
        g(900 + i, "user:2", "Negative" if i >= 5 else "Positive", "Positive", f"2026-01-02T00:00:{i:02d}")
        for i in range(10)
    ]
    project.review_tab = {"id": 7, "tasks": 3}
    project.install(monkeypatch)
    service = make_service(tmp_path, predictor, project)
    record = service.loop.train("5")
    by = {row["annotator"]: row for row in record["gold"]}
    assert by["user:1"]["accuracy"] == 1.0 and not by["user:1"]["flagged"] and by["user:1"]["n_gold"] == 10
    # The second annotator's answers in time order: right five times, then wrong five: the latest window is 0.5.
    assert by["user:2"]["accuracy"] == 0.5 and by["user:2"]["latest_window"] == 0.5 and by["user:2"]["flagged"]
    assert record["review_tab"] == {"id": 7, "tasks": 3}
    assert 0 < record["questions"][SCHEMA.from_name]["label_issues"] < len(project.labels)

    # An annotation event re-reads only the task it names: the other gold answers are kept from the last read.
    project.gold = [
        v if v.task_id != 909 or v.annotator != "user:2" else replace(v, label="Positive") for v in project.gold
    ]
    service.loop.projects.changed["5"] = {909}
    by = {row["annotator"]: row for row in service.loop.train("5")["gold"]}
    assert by["user:2"]["n_gold"] == 10 and by["user:2"]["accuracy"] == 0.6
    service.loop.rescoring.wait("5", timeout=120)


def test_models_saved_before_the_package_layout_still_load(tmp_path):
    """An artifact pickled when the classes were backend.loop.ProjectModel and backend.classifier.Model."""
    import sys
    import types

    import joblib

    import backend.loop
    from backend.learning import classifier
    from backend.loop.model_store import ModelStore
    from backend.loop.projects import TrainedModel

    rng = np.random.default_rng(0)
    fitted = classifier.fit(tuple(classifier.LEARNERS)[0], rng.normal(size=(30, 4)), None, [0, 1, 2] * 10, 3)
    saved = TrainedModel("v1", ("Positive", "Negative", "Neutral"), "llm-1", fitted)
    store = ModelStore(tmp_path, "7")
    store.add("v1", {}, {"macro_f1": 0.5}, promote=True)
    store.artifact("v1").unlink()  # in its place, the pickle a release before format 3 wrote
    renamed = [(TrainedModel, "backend.loop", "ProjectModel"), (classifier.Classifier, "backend.classifier", "Model")]
    originals = [(cls, cls.__module__, cls.__qualname__) for cls, _, _ in renamed]
    old_module = types.ModuleType("backend.classifier")
    try:
        for cls, module, name in renamed:
            cls.__module__, cls.__qualname__ = module, name
        sys.modules["backend.classifier"] = old_module
        old_module.Model, backend.loop.ProjectModel = classifier.Classifier, TrainedModel
        joblib.dump(saved, store.dir / "models" / "v1.joblib")
    finally:
        for cls, module, name in originals:
            cls.__module__, cls.__qualname__ = module, name
        del sys.modules["backend.classifier"], backend.loop.ProjectModel
    artifact = store.artifact("v1").read_bytes()
    assert b"ProjectModel" in artifact and b"backend.classifier" in artifact  # the old names, as deployed

    version, loaded = ModelStore(tmp_path, "7").current()
    assert version == "v1" and isinstance(loaded, TrainedModel) and isinstance(loaded.model, classifier.Classifier)
    x = rng.normal(size=(5, 4))
    assert np.allclose(loaded.model.predict_proba(x), fitted.predict_proba(x))
