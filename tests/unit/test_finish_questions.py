"""Finishing a config of several questions (backend/loop/finish.py): a multi-label question's confidence is its set's,
each question is routed on its own with one shared audit, and --apply's annotation holds only the questions the
model labels. Fakes only (a Label Studio in a dict, vectors that carry each question's answer); the round against a
real Label Studio is tests/e2e/test_finish_questions_e2e.py."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from support.bulk_labels import FakeBulkLabels
from support.facets import ASPECTS, CONFIG, FACETS, SENTIMENT, SPOILER, FacetFeatures
from support.finish import SignalLoop, annotation, fake_project
from support.shapes import mismatches
from support.views import FakeViews

from backend.labelstudio import audit, model_labels
from backend.labelstudio import schema as schemas
from backend.learning import classifier
from backend.loop import finish, finish_file, routing

TARGET = 0.8


# ---------------------------------------------------------------- the set's confidence (pure)


def test_a_multi_label_answer_is_as_sure_as_its_least_sure_label_and_right_only_as_a_whole():
    # The question owns its rules (Schema): the shapes here are the rules', whatever the number of labels.
    probs = np.array([[0.97, 0.02, 0.9], [0.97, 0.45, 0.99], [0.5, 0.0, 1.0]])
    assert ASPECTS.confidence(probs) == pytest.approx([0.9, 0.55, 0.5])
    assert SENTIMENT.confidence(probs) == pytest.approx([0.97, 0.99, 1.0])  # single choice: the top probability
    assert ASPECTS.decisions(probs).tolist() == [[1, 0, 1], [1, 0, 1], [1, 0, 1]]  # 0.5 is a yes
    y = np.array([[1, 0, 1], [1, 1, 1], [1, 0, 1]])
    assert ASPECTS.correct(probs, y).tolist() == [True, False, True]  # one label wrong: wrong
    assert SENTIMENT.correct(probs, np.array([0, 2, 2])).tolist() == [True, True, True]
    assert ASPECTS.confidence(np.zeros((0, 4))).shape == (0,)
    assert ASPECTS.correct(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0,)
    # The answer a question's probabilities give, and people's answers as a model learns them.
    assert ASPECTS.answer(np.array([0.9, 0.1, 0.5, 0.2])) == ASPECTS.key(["Acting", "Visuals"])
    assert ASPECTS.answer(np.array([0.1, 0.1, 0.4, 0.2])) == ""  # none applies
    assert SENTIMENT.answer(np.array([0.1, 0.7, 0.2])) == "Negative"
    assert ASPECTS.targets([ASPECTS.key(["Music", "Acting"]), ""]).tolist() == [[1, 0, 0, 1], [0, 0, 0, 0]]
    assert ASPECTS.targets([]).shape == (0, 4) and SENTIMENT.targets([]).shape == (0,)


# ---------------------------------------------------------------- a project of three questions


def facet_result(truth: dict) -> list[dict]:
    """A person's annotation answering every question with the truth."""
    aspects = [label for label, on in zip(ASPECTS.labels, truth["aspects"]) if on]
    return [
        SENTIMENT.result(SENTIMENT.labels[truth["sentiment"]]),
        ASPECTS.result(*aspects),
        SPOILER.result(SPOILER.labels[truth["spoiler"]]),
    ]


def facet_annotation(truth: dict, number: int) -> dict:
    return {**annotation("Positive", number=number, user=2), "result": facet_result(truth)}


class FacetLabelStudio(FakeBulkLabels):
    """One project of the review-facets config: its tasks, tabs and the calls finish's bulk write makes."""

    def __init__(self, tasks):
        self.listed = [SimpleNamespace(meta=None, **t) for t in tasks]
        self.tasks = SimpleNamespace(list=lambda **kw: self.listed)
        self.projects = SimpleNamespace(get=lambda id: SimpleNamespace(id=id, title="facets", label_config=FACETS))
        self.views = FakeViews(first_id=100)
        self.setup_bulk()

    def label(self, task_ids, truth):
        """A person answers every question of these tasks with the truth."""
        for task in self.listed:
            if task.id in task_ids:
                task.annotations = [facet_annotation(truth[task.data["text"]], 10_000 + task.id)]

    def model_annotations(self) -> dict[int, dict]:
        return {t.id: a for t in self.listed for a in t.annotations if model_labels.is_model_annotation(a)}


def facet_project(n_human: int = 240, n_open: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = {}
    for i in range(n_human + n_open):
        aspects = tuple(int(x) for x in rng.random(4) < [0.5, 0.45, 0.3, 0.3])
        truth[f"review {i}"] = {"sentiment": int(rng.integers(3)), "aspects": aspects, "spoiler": int(rng.integers(2))}
    tasks = []
    for i, (text, t) in enumerate(truth.items()):
        annotations = [facet_annotation(t, i + 1)] if i < n_human else []
        tasks.append({"id": i + 1, "data": {"text": text}, "annotations": annotations})
    loop = SignalLoop({}, seed)
    loop.text = FacetFeatures(truth, seed)
    return FacetLabelStudio(tasks), loop, truth


def answer_of(question: schemas.Schema, t: dict) -> str:
    if question.multiple:
        return question.key(label for label, on in zip(question.labels, t["aspects"]) if on)
    return question.labels[t[question.from_name]]


def test_each_question_plans_its_own_audit_from_its_own_region_and_one_sample_serves_all():
    client, loop, truth = facet_project()
    dataset = finish.build(client, 1, loop, target=TARGET)
    a, qs = dataset["audit"], dataset["questions"]
    assert list(qs) == ["sentiment", "aspects", "spoiler"] and qs["aspects"]["multiple"]
    assert a["status"] == "drawn" and dataset["counts"]["model"] == 0
    plan = a["plan"]
    parts = {name: audit.QuestionPlan(**fields) for name, fields in plan["questions"].items()}
    audited = [name for name, p in parts.items() if p.tasks]
    assert "aspects" in audited and len(audited) >= 2, {n: qs[n]["audit"] for n in qs}
    # The audit is the union of the samples; the top level is the first question's plan.
    assert plan["tasks"] == sorted(set().union(*(p.tasks for p in parts.values())))
    assert a["pending"] == plan["tasks"] and a["size"] == len(plan["tasks"]) <= sum(
        len(p.tasks) for p in parts.values()
    )
    assert (plan["region"], plan["floor"]) == (parts["sentiment"].region, parts["sentiment"].floor)
    open_ids = list(range(241, 641))
    order = [int(i) for i in np.random.default_rng(1).permutation(np.array(open_ids))]
    rows = {r["id"]: r for r in dataset["tasks"]}
    for name in audited:
        p, q = parts[name], qs[name]["audit"]
        # Its region: the open tasks whose confidence in this question reaches its floor; its sample: the region's
        # head in the project's one order.
        confidence = {i: rows[i]["questions"][name]["probability"] for i in open_ids}
        assert p.region == [i for i in open_ids if confidence[i] >= round(p.floor, 6) - 1e-9]
        assert p.tasks == sorted([i for i in order if i in set(p.region)][: len(p.tasks)])
        assert (q["status"], q["size"], q["floor"]) == ("drawn", len(p.tasks), p.floor)
        assert p.trained_on == list(range(1, 241))
    assert all(rows[i]["source"] == "audit" for i in plan["tasks"])
    assert all(e["source"] == "audit" for i in plan["tasks"] for e in rows[i]["questions"].values())

    # The multi-label question's confidence is the set's: recomputed from its model, one regression per label.
    train = [f"review {i}" for i in range(240)]
    others = [f"review {i - 1}" for i in open_ids]
    y = np.array([truth[t]["aspects"] for t in train])
    fitted = classifier.fit("blend", loop.text.vectors(None, train, ""), np.full((240, 4), 0.5), y, 4)
    probs = fitted.predict_proba(loop.text.vectors(None, others, ""), np.full((400, 4), 0.5))
    got = [rows[i]["questions"]["aspects"]["probability"] for i in open_ids]
    assert got == pytest.approx(np.maximum(probs, 1 - probs).min(axis=1), abs=1e-5)
    assert [rows[i]["questions"]["aspects"]["guess"] for i in open_ids] == [ASPECTS.answer(p) for p in probs]


def test_each_question_is_tested_on_its_own_sample_and_the_model_labels_only_what_cleared():
    client, loop, truth = facet_project()
    first = finish.build(client, 1, loop, target=TARGET)
    plan = first["audit"]["plan"]
    tab = audit.write(client, 1, audit.Audit(**plan))
    assert client.views.held[tab].data[audit.STATE_KEY]["format"] == 2
    parts = {name: audit.QuestionPlan(**fields) for name, fields in plan["questions"].items()}

    # Only the sentiment sample labeled: sentiment is tested, the others wait.
    done = set(parts["sentiment"].tasks)
    client.label(done, truth)
    waiting = finish.build(client, 1, loop, target=TARGET)
    statuses = {name: q["audit"]["status"] for name, q in waiting["questions"].items()}
    assert statuses["sentiment"] == "tested" and waiting["audit"]["status"] == "waiting"
    for name, p in parts.items():
        pending = [i for i in p.tasks if i not in done]
        assert waiting["questions"][name]["audit"]["pending"] == pending
        assert statuses[name] == ("none" if not p.tasks else "waiting" if pending else "tested")
    assert waiting["audit"]["pending"] == [i for i in plan["tasks"] if i not in done]

    client.label(set(plan["tasks"]), truth)
    dataset = finish.build(client, 1, loop, target=TARGET)
    rows, qs = {r["id"]: r for r in dataset["tasks"]}, dataset["questions"]
    assert dataset["audit"]["status"] == "tested"
    assert mismatches(json.loads(json.dumps(dataset)), finish_file.FinishFile) == []
    assert all(rows[i]["source"] == "human" for i in plan["tasks"])
    open_ids = [i for i in range(241, 641) if i not in set(plan["tasks"])]
    assert qs["aspects"]["estimate"]["threshold"] is not None, qs["aspects"]
    for name, q in qs.items():
        question, p = CONFIG.question(name), parts[name]
        e = q["estimate"]
        if p.tasks:
            # The threshold, recomputed: this question's model answers its own sample only, right when exact.
            train = [f"review {i - 1}" for i in p.trained_on]
            sample = [f"review {i - 1}" for i in p.tasks]
            y = question.targets(answer_of(question, truth[t]) for t in train)
            n = len(question.labels)
            flat = 0.5 if question.multiple else 1 / n
            fitted = classifier.fit("blend", loop.text.vectors(None, train, ""), np.full((len(train), n), flat), y, n)
            probs = fitted.predict_proba(loop.text.vectors(None, sample, ""), np.full((len(sample), n), flat))
            y_audit = question.targets(answer_of(question, truth[t]) for t in sample)
            chosen = routing.audit_threshold(
                question.confidence(probs),
                question.correct(probs, y_audit),
                p.expected,
                TARGET,
            )
            assert (e["threshold"], e["support"]) == (pytest.approx(chosen.threshold), chosen.support), name
        region = set(p.region)
        model = {i for i in open_ids if rows[i]["questions"][name]["source"] == "model"}
        if e["threshold"] is None:
            assert not model
        else:
            assert model == {
                i
                for i in open_ids
                if i in region and rows[i]["questions"][name]["probability"] >= round(e["threshold"], 6) - 1e-6
            }
            right = [
                rows[i]["questions"][name]["label"] == answer_of(question, truth[f"review {i - 1}"]) for i in model
            ]
            assert np.mean(right) >= TARGET - 0.1, (name, np.mean(right))
        assert e["model_labeled"] == q["counts"]["model"] == len(model)
        c = q["counts"]
        people = c["human"] + c["audit"] + c["needs_person"]
        assert q["human_fraction"] == round(people / (people + c["model"]), 4) and people + c["model"] == 640
    # A task is the model's only when every question cleared; partly cleared tasks still need a person.
    for i in open_ids:
        sources = {e["source"] for e in rows[i]["questions"].values()}
        assert rows[i]["source"] == ("model" if sources == {"model"} else "needs_person")
        assert rows[i]["label"] == rows[i]["questions"]["sentiment"]["label"]
    partly = [
        i
        for i in open_ids
        if rows[i]["source"] == "needs_person" and any(e["source"] == "model" for e in rows[i]["questions"].values())
    ]
    assert partly and set(dataset["needs_person"]) == {i for i in open_ids if rows[i]["source"] == "needs_person"}
    assert dataset["estimate"] == qs["sentiment"]["estimate"] and dataset["model"] == qs["sentiment"]["model"]

    # --apply: one annotation per task holding exactly the questions that cleared there; none where none did.
    record = finish.apply(client, 1, dataset)
    held = client.model_annotations()
    for i in open_ids:
        cleared = {name: e["label"] for name, e in rows[i]["questions"].items() if e["source"] == "model"}
        if not cleared:
            assert i not in held
            continue
        results = held[i]["result"]
        assert [r["from_name"] for r in results] == [q.from_name for q in CONFIG.questions if q.from_name in cleared]
        assert finish.held_answers(held[i], CONFIG.questions) == cleared
        assert rows[i]["annotation"] == held[i]["id"]
    assert {c["task"] for c in record["created"]} == set(held) and not record["removed"] and not record["failed"]
    assert all(c["answers"] == finish.wanted(rows[c["task"]], "sentiment") for c in record["created"])
    none_applies = [i for i in held if rows[i]["questions"]["aspects"].get("label") == ""]
    empty = model_labels.mark_result([ASPECTS.result()])[0]
    assert none_applies and all(empty in held[i]["result"] for i in none_applies)  # an empty choice
    # Again: nothing new. A model label whose answers changed is replaced; one no longer cleared taken back.
    again = finish.apply(client, 1, dataset)
    assert not again["created"] and not again["removed"] and {k["task"] for k in again["kept"]} == set(held)
    changed, dropped = partly[0], next(i for i in held if i != partly[0])
    entry = rows[changed]["questions"]["sentiment"]
    other = next(label for label in SENTIMENT.labels if label != entry["label"])
    rows[changed]["questions"]["sentiment"] = {**entry, "source": "model", "label": other}
    for entry in rows[dropped]["questions"].values():
        entry["source"] = "needs_person"
    tidy = finish.apply(client, 1, dataset)
    assert {r["task"]: r["reason"] for r in tidy["removed"]} == {
        changed: "label changed",
        dropped: "below the threshold now",
    }
    assert finish.held_answers(client.model_annotations()[changed], CONFIG.questions)["sentiment"] == other
    assert dropped not in client.model_annotations()

    # --undo takes every model annotation back, and the tab.
    undone = finish.undo(client, 1)
    assert not client.model_annotations() and undone["audit_tab_removed"] and not undone["failed"]


def test_a_cleared_multi_label_answer_of_none_is_written_as_an_empty_choice_and_read_back():
    client, _, _ = facet_project(n_human=0, n_open=2)
    row = {
        "id": 1,
        "source": "needs_person",
        "label": None,
        "questions": {
            "sentiment": {"source": "needs_person", "label": None},
            "aspects": {"source": "model", "label": ""},
            "spoiler": {"source": "model", "label": "No"},
        },
    }
    dataset = {"tasks": [row, {"id": 2, "source": "needs_person", "label": None, "questions": {}}], "audit": {}}
    record = finish.apply(client, 1, dataset)
    (made,) = client.model_annotations().values()
    assert made["result"] == model_labels.mark_result([ASPECTS.result(), SPOILER.result("No")])
    assert finish.held_answers(made, CONFIG.questions) == {"aspects": "", "spoiler": "No"}
    assert record["created"] == [
        {"task": 1, "annotation": made["id"], "label": None, "answers": {"aspects": "", "spoiler": "No"}}
    ]
    assert not finish.apply(client, 1, dataset)["created"]  # read back as the same answers: kept


def test_one_question_keeps_its_plan_and_file_as_before():
    client, loop, _ = fake_project(n_human=200)
    dataset = finish.build(client, 1, loop, target=TARGET)
    plan = dataset["audit"]["plan"]
    assert "questions" not in plan and set(dataset["questions"]) == {"sentiment"}
    tab = audit.write(client, 1, audit.Audit(**plan))
    assert client.views.held[tab].data[audit.STATE_KEY]["format"] == 1
    q = dataset["questions"]["sentiment"]
    assert q["estimate"] == dataset["estimate"] and q["audit"]["pending"] == dataset["audit"]["pending"]
    assert all(r["questions"]["sentiment"]["source"] == r["source"] for r in dataset["tasks"])
    assert finish.wanted({"id": 3, "source": "model", "label": "Positive"}, "sentiment") == {"sentiment": "Positive"}
