"""Finishing a dataset (backend/loop/finish.py, labelloop finish): the routing arithmetic, the mark on the model's
annotations, and the whole round against a real Label Studio 1.23.2 with the loop in-process on the tiny model.

The tiny model is random, so its labels are poor: the end-to-end test asks for a low target (the mechanics, not the
model, are under test) and checks the estimate's arithmetic against a recomputation."""

from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace

import numpy as np
import pytest
from support.choices import result
from support.finish import (
    SCHEMA,
    FakeLabelStudio,
    annotation,
    fake_project,
)
from support.shapes import mismatches

from backend.labelstudio import audit, model_labels
from backend.labelstudio import schema as schemas
from backend.labelstudio import tasks as ls_tasks
from backend.learning import classifier
from backend.loop import finish, finish_file, routing
from backend.quality import gold

# ---------------------------------------------------------------- routing helpers (pure)


def test_threshold_for_reads_the_top_probability_and_the_argmax():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], 300)
    y = np.where(rng.random(300) < 0.9, probs.argmax(1), (probs.argmax(1) + 1) % 3)
    got = routing.threshold_for(probs, y, target=0.8)
    assert got == routing.choose_threshold(probs.max(1), probs.argmax(1) == y, target=0.8)
    assert got.threshold is not None
    assert routing.threshold_for(np.zeros((0, 3)), np.zeros(0, int)).threshold is None
    record = routing.routing_record(probs, np.full((300, 3), 1 / 3), y, target=0.8)
    assert record["model"] == got.as_dict() and record["llm"]["threshold"] is None  # a flat LLM never passes


def test_pool_coverage_uses_the_serving_models_measurement():
    blend = {"threshold": 0.8, "target": 0.95, "accuracy": 0.97, "lower_bound": 0.951, "support": 40}
    llm = {"threshold": 0.9, "target": 0.95, "accuracy": 0.96, "lower_bound": 0.95, "support": 31}
    records = [
        {"version": "v-r1", "promoted": True, "routing": {"model": blend, "llm": {**llm, "threshold": None}}},
        {"version": "v-r2", "promoted": False, "routing": {"model": {**blend, "threshold": 0.5}, "llm": llm}},
    ]
    probs = np.array([[0.85, 0.1, 0.05], [0.95, 0.03, 0.02], [0.4, 0.3, 0.3], [0.99, 0.0, 0.01]])
    ids = [1, 2, 3, 4]
    got = routing.pool_coverage(probs, ids, records, "v-r1", labeled={4})
    assert got["threshold"] == 0.8 and got["unlabeled"] == 3 and got["model_can_label"] == 2
    assert got["share"] == pytest.approx(2 / 3, abs=1e-4) and got["measured"] and got["lower_bound"] == 0.951
    # The LLM serving alone: the newest run's measurement of the LLM.
    got = routing.pool_coverage(probs, ids, records, None)
    assert got["threshold"] == 0.9 and got["model_can_label"] == 2 and got["unlabeled"] == 4
    # Nothing measured yet (no run, or a model promoted before runs noted routing).
    got = routing.pool_coverage(probs, ids, [{"version": "v-r1", "promoted": True}], "v-r1")
    assert got["measured"] is False and got["model_can_label"] == 0 and got["threshold"] is None


# ---------------------------------------------------------------- the mark (pure)


def test_a_model_annotation_is_marked_and_unsaved_since():
    assert model_labels.is_model_annotation(annotation("Positive", marked=True))
    assert not model_labels.is_model_annotation(annotation("Positive"))
    edited = annotation("Negative", marked=True, edited_after=30)
    assert model_labels.is_marked(edited) and not model_labels.is_model_annotation(edited)  # a person's now
    # SDK objects carry datetimes; an annotation without times stays the model's.
    obj = SimpleNamespace(import_id=model_labels.MARK, created_at=datetime(2026, 1, 1), updated_at=datetime(2026, 1, 1))
    assert model_labels.is_model_annotation(obj)
    assert model_labels.is_model_annotation({"import_id": model_labels.MARK})
    assert not model_labels.is_model_annotation({"import_id": True})
    assert "import_id" in ls_tasks._INCLUDE.split(",")


class FakeClient:
    """Answers ls_tasks' task list with the given tasks."""

    def __init__(self, tasks):
        self.tasks = SimpleNamespace(list=lambda **kw: [SimpleNamespace(**t) for t in tasks])


def test_training_reads_no_model_label_as_a_human_one():
    tasks = [
        {"id": 1, "data": {"text": "only the model"}, "annotations": [annotation("Positive", marked=True, number=1)]},
        {
            "id": 2,
            "data": {"text": "model and person"},
            "annotations": [annotation("Positive", marked=True, number=2), annotation("Negative", number=3, user=2)],
        },
        {
            "id": 3,
            "data": {"text": "corrected by a person"},
            "annotations": [annotation("Neutral", marked=True, edited_after=60, number=4)],
        },
        {"id": 4, "data": {"text": "a person"}, "annotations": [annotation("Positive", number=5, user=2)]},
    ]
    labeled, stats = ls_tasks.fetch_labeled(FakeClient(tasks), 1, SCHEMA, gold_set=gold.default_gold())
    assert {(t.task_id, t.label, t.annotations) for t in labeled} == {
        (2, "Negative", 1),
        (3, "Neutral", 1),
        (4, "Positive", 1),
    }
    assert stats.model == 1 and stats.tasks == len(labeled) + stats.model


def test_the_mark_rides_in_the_result_as_text_and_the_earlier_import_id_still_reads():
    (item,) = result("Positive")
    marked = model_labels.mark_result([item])
    assert marked[0]["meta"] == {"labelloop": str(model_labels.MARK)} and marked[0]["value"] == item["value"]
    assert model_labels.is_model_annotation({"result": marked, "created_at": None})
    assert model_labels.is_model_annotation({"import_id": model_labels.MARK, "result": [item]})
    for forged in ({"labelloop": model_labels.MARK}, {"labelloop": "yes"}, {"text": str(model_labels.MARK)}, None):
        assert not model_labels.is_marked({"result": [{**item, "meta": forged}]}), forged
    assert not model_labels.is_marked({"result": "not a list"}) and not model_labels.is_marked({})
    saved_later = {**annotation("Positive", edited_after=60), "result": marked}
    assert model_labels.is_marked(saved_later) and not model_labels.is_model_annotation(saved_later)


def test_apply_writes_in_bulk_and_clears_what_a_killed_run_left():
    client, _, _ = fake_project(n_human=2, n_open=6)  # tasks 1-2 people's, 3 held an earlier model label, 4-8 open
    dataset = {
        "tasks": [{"id": i, "source": "model", "label": "Negative"} for i in (3, 4, 5, 6)]
        + [{"id": i, "source": "needs_person", "label": None} for i in (7, 8)],
        "audit": {},
    }
    # A run killed after its action (task 5's label exists, its set stayed) and one killed while importing (task 6).
    leftover = {"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": ["Negative"]}}
    for version, task in (("labelloop-finish-killed", 5), ("labelloop-finish-older", 6)):
        client.projects.import_predictions(
            id=1, request=[{"task": task, "result": model_labels.mark_result([leftover]), "model_version": version}]
        )
    client.actions.create(
        id="predictions_to_annotations",
        project=1,
        selected_items={"all": False, "included": [5]},
        request_options={"additional_body_parameters": {"model_version": "labelloop-finish-killed"}},
    )
    client.calls.clear()
    record = finish.apply(client, 1, dataset)
    held = client.model_annotations()
    assert set(held) == {3, 4, 5, 6} and all(len(anns) == 1 for anns in held.values())
    assert {i: finish.held_answers(anns[0], schemas.as_config(SCHEMA).questions) for i, anns in held.items()} == {
        i: {"sentiment": "Negative"} for i in (3, 4, 5, 6)
    }
    assert [(r["task"], r["reason"]) for r in record["removed"]] == [(3, "label changed")]
    assert {k["task"] for k in record["kept"]} == {5} and {c["task"] for c in record["created"]} == {3, 4, 6}
    assert all(c["annotation"] == held[c["task"]][0]["id"] for c in record["created"]) and not record["failed"]
    assert client.sets() == set()  # the leftovers and this run's own set are gone
    assert client.calls[:2] == ["delete set labelloop-finish-killed", "delete set labelloop-finish-older"]
    assert client.calls[2:4] == ["import predictions", "action"] and client.calls[4].startswith("delete set")
    assert len(client.calls) == 5
    # Again: nothing to write, so no set at all.
    client.calls.clear()
    again = finish.apply(client, 1, dataset)
    assert not again["created"] and not again["removed"] and {k["task"] for k in again["kept"]} == {3, 4, 5, 6}
    assert client.calls == [] and not again["label_set_removed"]
    # A run killed while deleting its set, after its labels were made: the next run has nothing to write, and
    # deletes the set all the same.
    client.projects.import_predictions(id=1, request=[{"task": 4, "result": [], "model_version": "labelloop-finish-x"}])
    assert finish.apply(client, 1, dataset)["label_set_removed"] and client.sets() == set()
    # Undo: every model label goes.
    undone = finish.undo(client, 1)
    assert not client.model_annotations() and {r["task"] for r in undone["removed"]} == {3, 4, 5, 6}
    assert not undone["label_set_removed"]


def test_the_target_and_level_must_be_fractions():
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(finish.FinishError, match="strictly between 0 and 1"):
            finish.check_target(bad, 0.95)
    with pytest.raises(finish.FinishError, match="level"):
        finish.check_target(0.9, 1.0)


def blend_probs(loop, truth, train, others):
    """The blend fitted on the `train` texts: its out-of-fold probabilities on them and its probabilities on
    `others`, recomputed as build computes them."""
    y = np.array([truth[t] for t in train])
    vectors, llm = loop.text.vectors(SCHEMA, train, ""), loop.text.llm_probs(SCHEMA, train)[0]
    oof = classifier.out_of_fold("blend", vectors, llm, y, 3)
    fitted = classifier.fit("blend", vectors, llm, y, 3)
    return oof, y, fitted.predict_proba(loop.text.vectors(SCHEMA, others, ""), loop.text.llm_probs(SCHEMA, others)[0])


def test_the_first_run_plans_an_audit_of_the_region_and_labels_nothing():
    client, loop, truth = fake_project(n_human=200)
    target = 0.8
    dataset = finish.build(client, 1, loop, target=target)
    a, rows = dataset["audit"], {r["id"]: r for r in dataset["tasks"]}
    assert dataset["model"] == {
        "kind": "blend",
        "trained_on": 200,
        "fallback": None,
        "llm_version": "flat-llm",
        "features": "signal",
    }
    assert loop.text.saved == 1
    assert a["status"] == "drawn" and a["tab"] is None and a["size"] == len(a["pending"]) > 0, a
    assert dataset["counts"]["model"] == 0 and dataset["estimate"]["threshold"] is None
    assert dataset["counts"]["audit"] == a["size"] and dataset["counts"]["needs_person"] == 300 - a["size"]
    # The plan, recomputed: out-of-fold answers choose the floor and size; the region is every open task above it.
    train = [f"review {i}" for i in range(200)]
    open_ids = list(range(201, 501))
    oof, y, probs = blend_probs(loop, truth, train, [f"review {i - 1}" for i in open_ids])
    plan = routing.plan_audit(oof.max(1), oof.argmax(1) == y, probs.max(1), target, 0.95)
    assert (a["floor"], a["size"], a["expected"]) == (plan.region, plan.size, plan.expected)
    region = {i for i, p in zip(open_ids, probs.max(1)) if p >= plan.region}
    assert set(a["plan"]["region"]) == region and len(region) == plan.available == a["region_tasks"]
    assert set(a["pending"]) <= region and a["plan"]["trained_on"] == list(range(1, 201))
    assert all(rows[i]["source"] == "audit" and rows[i]["guess"] in SCHEMA.labels for i in a["pending"])
    # Seeded by the project: the same labels draw the same sample.
    assert finish.build(client, 1, loop, target=target)["audit"]["pending"] == a["pending"]


def test_once_the_audit_is_labeled_the_model_labels_the_region_above_the_tested_threshold():
    client, loop, truth = fake_project(n_human=200)
    target = 0.8
    plan = finish.build(client, 1, loop, target=target)["audit"]["plan"]
    tab = audit.write(client, 1, audit.Audit(**plan))
    half = plan["tasks"][: len(plan["tasks"]) // 2]
    client.label(set(half), truth)
    waiting = finish.build(client, 1, loop, target=target)
    a = waiting["audit"]
    assert a["status"] == "waiting" and a["tab"] == tab and a["labeled"] == len(half)
    assert a["pending"] == plan["tasks"][len(half) :] and waiting["counts"]["model"] == 0

    late = next(i for i in plan["region"] if i not in plan["tasks"])  # labeled after the plan: not fitted on
    client.label(set(plan["tasks"]) | {late}, truth)
    dataset = finish.build(client, 1, loop, target=target)
    est, rows = dataset["estimate"], {r["id"]: r for r in dataset["tasks"]}
    assert dataset["audit"]["status"] == "tested" and dataset["model"]["trained_on"] == 200
    assert all(rows[i]["source"] == "human" for i in plan["tasks"] + [late])
    # The threshold, recomputed: the plan's model answers the audit, tested in a fixed sequence.
    train = [f"review {i}" for i in range(200)]
    region = [i for i in plan["region"] if i not in plan["tasks"] and i != late]
    others = [f"review {i - 1}" for i in plan["tasks"] + region]
    _, _, probs = blend_probs(loop, truth, train, others)
    n = len(plan["tasks"])
    y_audit = np.array([truth[t] for t in others[:n]])
    chosen = routing.audit_threshold(probs[:n].max(1), probs[:n].argmax(1) == y_audit, plan["expected"], target)
    assert est["threshold"] is not None and est["rule"] == "audit", est
    assert {k: est[k] for k in ("threshold", "support", "accuracy", "lower_bound")} == {
        k: getattr(chosen, k) for k in ("threshold", "support", "accuracy", "lower_bound")
    }
    model = {r["id"] for r in dataset["tasks"] if r["source"] == "model"}
    assert model == {i for i, p in zip(region, probs[n:].max(1)) if p >= chosen.threshold} and model
    outside = set(range(201, 501)) - set(plan["region"])
    assert all(rows[i]["source"] == "needs_person" for i in outside)  # below the floor: never the model's
    # The model's labels are right about as often as promised (the features carry the same signal).
    assert np.mean([rows[i]["label"] == SCHEMA.labels[truth[f"review {i - 1}"]] for i in model]) >= target - 0.05

    # The audit was drawn for one target: testing it at another is refused; a new audit plans from every label.
    with pytest.raises(finish.FinishError, match="drawn for a target of 0.8"):
        finish.build(client, 1, loop, target=0.7)
    again = finish.build(client, 1, loop, target=0.7, new_audit=True)
    assert again["audit"]["status"] in ("drawn", "none") and again["model"]["trained_on"] == 200 + n + 1


def test_the_file_and_the_records_are_shaped_as_declared():
    client, loop, truth = fake_project(n_human=200)
    plan = finish.build(client, 1, loop, target=0.8)["audit"]["plan"]
    audit.write(client, 1, audit.Audit(**plan))
    client.label(set(plan["tasks"]), truth)
    dataset = finish.build(client, 1, loop, target=0.8)
    assert dataset["audit"]["status"] == "tested" and dataset["counts"]["model"]
    dataset["apply"] = finish.apply(client, 1, dataset)
    undone = finish.undo(client, 1)
    written = json.loads(json.dumps(dataset))  # as another tool reads the file
    assert mismatches(written, finish_file.FinishFile) == []
    assert mismatches(json.loads(json.dumps(undone)), finish_file.UndoRecord) == []
    # The check can fail: a key nobody declared, a required one missing.
    written["tasks"][0]["questions"]["sentiment"]["extra"] = 1
    del written["questions"]["sentiment"]["estimate"]["bound"]
    assert mismatches(written, finish_file.FinishFile) == [
        "$.tasks[0].questions.sentiment.extra: not declared in QuestionEntry",
        "$.questions.sentiment.estimate.bound: missing",
    ]


def test_a_prediction_powered_bound_tests_the_same_audit_with_the_regions_confidences():
    client, loop, truth = fake_project(n_human=200)
    target = 0.8
    plan = finish.build(client, 1, loop, target=target)["audit"]["plan"]
    audit.write(client, 1, audit.Audit(**plan))
    client.label(set(plan["tasks"]), truth)
    exact = finish.build(client, 1, loop, target=target)
    dataset = finish.build(client, 1, loop, target=target, bound="ppi")
    est = dataset["estimate"]
    assert exact["estimate"]["bound"] == "exact" and est["bound"] == "ppi" and est["rule"] == "audit"
    # Recomputed: the plan's model answers the audit and the region's open tasks; the bound reads them all.
    train = [f"review {i}" for i in range(200)]
    region = [i for i in plan["region"] if i not in plan["tasks"]]
    others = [f"review {i - 1}" for i in plan["tasks"] + region]
    _, _, probs = blend_probs(loop, truth, train, others)
    n = len(plan["tasks"])
    right = probs[:n].argmax(1) == np.array([truth[t] for t in others[:n]])
    chosen = routing.ppi_audit_threshold(probs.max(1), probs[:n].max(1), right, plan["expected"], target)
    assert chosen.threshold is not None
    assert {k: est[k] for k in ("threshold", "support", "accuracy")} == {
        k: getattr(chosen, k) for k in ("threshold", "support", "accuracy")
    }
    assert est["lower_bound"] == pytest.approx(chosen.lower_bound)
    model = {r["id"] for r in dataset["tasks"] if r["source"] == "model"}
    assert model == {i for i, p in zip(region, probs[n:].max(1)) if p >= chosen.threshold}
    with pytest.raises(finish.FinishError, match="unknown bound 'normal'; choose from exact, ppi"):
        finish.build(client, 1, loop, target=target, bound="normal")


def test_a_damaged_or_foreign_plan_is_refused_with_what_to_do():
    client, loop, _ = fake_project(n_human=50, n_open=20)
    client.views.create(1, {"title": audit.TITLE, audit.STATE_KEY: {"format": 99}})
    with pytest.raises(finish.FinishError, match="format 99, expected 1.*--new-audit"):
        finish.build(client, 1, loop)
    client.views.held[100].data[audit.STATE_KEY] = {"format": 1, "tasks": [1]}
    with pytest.raises(finish.FinishError, match="damaged audit plan"):
        finish.build(client, 1, loop)
    assert finish.build(client, 1, loop, new_audit=True)["audit"]["tab"] is None


def test_with_too_few_labels_to_fit_the_llm_alone_is_the_model():
    client, loop, _ = fake_project(n_human=3, n_open=20)
    dataset = finish.build(client, 1, loop, target=0.9)
    assert dataset["model"]["kind"] == "llm" and "the LLM alone" in dataset["model"]["fallback"]
    assert dataset["audit"]["status"] == "none" and dataset["counts"]["needs_person"] == 20
    empty = finish.build(FakeLabelStudio([]), 1, loop)
    assert empty["counts"]["tasks"] == 0 and empty["estimate"]["threshold"] is None


# ---------------------------------------------------------------- against Label Studio


def test_the_command_takes_the_bound_and_refuses_another(capsys):
    from backend.cli import finish as finish_cli

    parser = finish_cli.build_parser()
    assert parser.parse_args(["--project", "1"]).bound == "exact"
    assert parser.parse_args(["--project", "1", "--bound", "ppi"]).bound == "ppi"
    with pytest.raises(SystemExit) as exit:
        parser.parse_args(["--project", "1", "--bound", "normal"])
    assert exit.value.code == 2 and "--bound: invalid choice: 'normal'" in capsys.readouterr().err
